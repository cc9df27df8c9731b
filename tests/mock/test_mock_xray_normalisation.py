"""Regression: a mock cluster at the universe's lower beta clip (beta = 1/2) renders an X-ray image.

With seed 99 and density_scale 10, MOCK-0069500-014 (shard order 6, pixel 17375) has beta = 0.5,
where the beta model's total flux diverges: normalising to it gave 0/0, NaN expected counts and
``ValueError: lam value too large`` from numpy's Poisson sampler.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u

from survey_mass.mock import xray
from survey_mass.mock.source import MockSource
from survey_mass.mock.universe import clusters_in
from survey_mass.pixel_math import healpix
from survey_mass.sources.base import Cutout, Target
from survey_mass.spec.footprint import ConeFootprint
from survey_mass.spec.universe import UniverseSpec

SPEC = UniverseSpec(seed=99, density_scale=10)
ORDER, PIXEL = 6, 17375
TARGET = "MOCK-0069500-014"


@pytest.fixture(scope="module")
def shard():
    lon, lat = healpix(ORDER).healpix_to_lonlat(PIXEL)
    footprint = ConeFootprint(ra=lon.to_value(u.deg), dec=lat.to_value(u.deg), radius_deg=2.0)
    return clusters_in(SPEC, footprint, ORDER, PIXEL)


def test_the_beta_one_half_target_renders_finite_non_negative_counts(shard):
    row = shard[shard["target_id"] == TARGET]
    assert len(row) == 1 and row["beta"].iloc[0] == 0.5  # still the degenerate case
    target = Target(TARGET, row["ra"].iloc[0], row["dec"].iloc[0], row["z"].iloc[0])
    (cutout,) = MockSource(SPEC).cutouts([target], "xray")
    assert isinstance(cutout, Cutout)
    image = cutout.hdul[0].data
    assert image.shape == (xray.XRAY_GRID, xray.XRAY_GRID)
    assert np.isfinite(image).all() and (image >= 0).all()
    np.testing.assert_array_equal(image, np.round(image))
    assert image.sum() > 0


def test_every_target_of_the_shard_renders(shard):
    source = MockSource(SPEC)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in shard.itertuples()]
    for cutout in source.cutouts(targets, "xray"):
        assert isinstance(cutout, Cutout)
        assert np.isfinite(cutout.hdul[0].data).all()


def test_counts_are_continuous_in_beta_at_one_half(shard):
    state = shard[shard["target_id"] == TARGET].iloc[0].copy()
    at_half = xray.expected_counts(state, 32)[0]
    state["beta"] = 0.5 + 1e-9
    np.testing.assert_allclose(xray.expected_counts(state, 32)[0], at_half, rtol=1e-6)
