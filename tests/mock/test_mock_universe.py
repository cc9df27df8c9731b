"""The mock survey is the same bit for bit whatever the number of workers or the sharding."""

from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from survey_mass.mock import RENDERERS
from survey_mass.mock.external import pixel_catalog
from survey_mass.mock.universe import (
    UNIVERSE_ORDER,
    UniverseSpec,
    clusters_in,
    clusters_per_deg2,
)
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import ConeFootprint

SPEC = UniverseSpec(seed=99, density_scale=20)
FOOTPRINT = ConeFootprint(ra=300.0, dec=-45.0, radius_deg=0.6)


def shard(pixel: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Everything the survey makes of one pixel: truth, a catalog, and its first cutouts' hashes."""
    truth = clusters_in(SPEC, FOOTPRINT, UNIVERSE_ORDER, pixel)
    catalog = pixel_catalog("psz2", SPEC, pixel, FOOTPRINT, select=False)
    hashes = {}
    if len(truth):
        for instrument, render in RENDERERS.items():
            data = np.ascontiguousarray(render(truth.iloc[0], SPEC.seed)[0].data)
            hashes[instrument] = hashlib.sha256(data.tobytes()).hexdigest()
    return truth, catalog, hashes


def test_same_survey_on_one_or_two_fresh_workers():
    pixels = [int(p) for p in footprint_pixels(FOOTPRINT, UNIVERSE_ORDER)]
    serial = {p: shard(p) for p in pixels}
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no shared caches
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        parallel = dict(zip(pixels[::-1], pool.map(shard, pixels[::-1]), strict=True))
    assert sum(len(s[0]) for s in serial.values()) > 20
    for p in pixels:
        pd.testing.assert_frame_equal(serial[p][0], parallel[p][0], check_exact=True)
        pd.testing.assert_frame_equal(serial[p][1], parallel[p][1], check_exact=True)
        assert serial[p][2] == parallel[p][2]


def test_coarser_shards_hold_the_same_clusters():
    fine = pd.concat(
        [
            clusters_in(SPEC, FOOTPRINT, UNIVERSE_ORDER, p)
            for p in footprint_pixels(FOOTPRINT, UNIVERSE_ORDER)
        ],
        ignore_index=True,
    )
    coarse = pd.concat(
        [clusters_in(SPEC, FOOTPRINT, 4, p) for p in footprint_pixels(FOOTPRINT, 4)],
        ignore_index=True,
    )
    key = "target_id"
    pd.testing.assert_frame_equal(
        fine.sort_values(key).reset_index(drop=True),
        coarse.sort_values(key).reset_index(drop=True),
        check_exact=True,
    )
    # and their number is the Tinker 2008 expectation for the area, within Poisson noise
    expected = clusters_per_deg2(SPEC) * FOOTPRINT.area_deg2()
    assert abs(len(fine) - expected) < 4 * np.sqrt(expected)
