"""X-ray preprocessing rejects a cutout without a usable EXPOSURE, and only that cutout."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from survey_mass.mock.source import MockSource
from survey_mass.mock.universe import base_pixel_clusters
from survey_mass.preprocess.xray import preprocess_xray
from survey_mass.sources.base import Cutout, Target
from survey_mass.spec.universe import UniverseSpec

SPEC = UniverseSpec(seed=11, density_scale=10)


def _cutouts(n: int) -> list[Cutout]:
    rows = base_pixel_clusters(SPEC, 120000).head(n)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in rows.itertuples()]
    cutouts = list(MockSource(SPEC).cutouts(targets, "xray"))
    assert len(cutouts) == n and all(isinstance(c, Cutout) for c in cutouts)
    return cutouts


def _set(value):
    return lambda header: header.__setitem__("EXPOSURE", value)


def _overflowing(header):
    """EXPOSURE = 1.0E999 as a FITS file can carry it: astropy reads it as inf."""
    header.remove("EXPOSURE")
    header.append(fits.Card.fromstring("EXPOSURE= 1.0E999"))


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda header: header.remove("EXPOSURE"), "missing_header"),
        (_set("NaN"), "bad_exposure"),  # astropy refuses a float NaN in a header; text gets in
        (_overflowing, "bad_exposure"),
        (_set(0.0), "bad_exposure"),
        (_set(-5.0e4), "bad_exposure"),
        (_set("unknown"), "bad_exposure"),
        (_set(True), "bad_exposure"),
    ],
)
def test_a_bad_exposure_fails_its_cutout_and_the_others_are_prepared(spoil, reason):
    cutouts = _cutouts(4)
    bad = cutouts[1]
    spoil(bad.hdul[0].header)
    prepared = preprocess_xray(cutouts, np)

    assert [f.reason for f in prepared.failures] == [reason]
    failure = prepared.failures[0]
    assert failure.target.target_id == bad.target.target_id
    assert failure.instrument == "xray"
    assert failure.detail.startswith(f"{reason}: ") and "EXPOSURE" in failure.detail
    assert "seconds" in failure.detail  # says how to fix it
    good = [c for c in cutouts if c is not bad]
    assert [c.target.target_id for c in prepared.cutouts] == [c.target.target_id for c in good]
    assert prepared.inputs.shape == (3, 128, 128, 1)
    assert np.isfinite(prepared.inputs).all()
    # the good cutouts are prepared exactly as in a batch without the bad one
    alone = preprocess_xray(good, np)
    assert not alone.failures
    np.testing.assert_array_equal(prepared.inputs, alone.inputs)


def test_failures_keep_the_batch_order_among_other_kinds_of_failure():
    cutouts = _cutouts(4)
    cutouts[0].hdul[0].data[5, 5] = np.nan
    cutouts[2].hdul[0].header["EXPOSURE"] = 0.0
    prepared = preprocess_xray(cutouts, np)
    assert [(f.target.target_id, f.reason) for f in prepared.failures] == [
        (cutouts[0].target.target_id, "nonfinite_pixels"),
        (cutouts[2].target.target_id, "bad_exposure"),
    ]
    assert [c.target.target_id for c in prepared.cutouts] == [
        cutouts[1].target.target_id,
        cutouts[3].target.target_id,
    ]


def test_a_batch_of_only_bad_exposures_is_empty_with_every_failure():
    cutouts = _cutouts(2)
    for c in cutouts:
        c.hdul[0].header["EXPOSURE"] = -1.0
    prepared = preprocess_xray(cutouts, np)
    assert [f.reason for f in prepared.failures] == ["bad_exposure", "bad_exposure"]
    assert prepared.cutouts == [] and prepared.inputs.shape == (0, 128, 128, 1)


def test_a_tiny_exposure_that_overflows_the_stretch_costs_only_its_row():
    # 1e-33 s passes the EXPOSURE checks; its luminosities (~1e41 stretches) exceed float32
    from survey_mass.preprocess.guard import NONFINITE_DETAIL, prepare_for_model
    from survey_mass.preprocess.xray import VERSION

    cutouts = _cutouts(3)
    cutouts[0].hdul[0].header["EXPOSURE"] = 1e-33
    prepared = prepare_for_model(VERSION, (128, 128, 1), "xray-test", cutouts, np)
    assert [(f.reason, f.detail) for f in prepared.failures] == [
        ("nonfinite_input", NONFINITE_DETAIL)
    ]
    assert prepared.failures[0].target == cutouts[0].target
    assert [c.target for c in prepared.cutouts] == [c.target for c in cutouts[1:]]
    assert np.isfinite(prepared.inputs).all()
