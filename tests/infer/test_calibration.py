"""Calibrated uncertainties: 68% and 95% intervals that hold what they claim, per redshift bin."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from survey_mass.infer.ensemble import FoldEnsemble
from survey_mass.train.ensemble import calibrate
from survey_mass.train.evaluate import calibrate_entry
from survey_mass.zoo.manifest import ModelIntegrityError, verify_manifest
from survey_mass.zoo.registry import SHIPPED_ZOO

ENTRIES = ["xray-v1", "sz-v1", "optical-v1"]


def _frame(residuals: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"pred": residuals, "log10_m500": 0.0, "sigma": np.nan})


def test_heavy_tails_widen_the_95_percent_interval_beyond_gaussian():
    rng = np.random.default_rng(0)
    val, test = (_frame(0.05 * rng.standard_t(3, 20000)) for _ in range(2))
    cal = calibrate(val, test)
    assert cal["kind"] == "constant" and cal["interval_95"] > 2.2
    assert cal["coverage_68"] == pytest.approx(0.6827, abs=0.01)
    assert cal["coverage_95"] == pytest.approx(0.9545, abs=0.01)
    assert cal["coverage_95_gaussian"] < 0.94  # what 1.96 sigma would have covered


@pytest.mark.parametrize("entry", ENTRIES)
def test_shipped_ensembles_cover_68_and_95_percent_of_held_out_truths_within_3_points(
    entry, tmp_path
):
    copy = tmp_path / entry
    shutil.copytree(SHIPPED_ZOO / entry, copy)
    cal = calibrate_entry(copy)  # recomputed from the fold records, not read back
    for group in cal.get("z_bins") or [cal]:
        assert group["coverage_68"] == pytest.approx(0.6827, abs=0.03), group.get("z_bin")
        assert group["coverage_95"] == pytest.approx(0.9545, abs=0.03), group.get("z_bin")
    shipped = json.loads((SHIPPED_ZOO / entry / "manifest.json").read_text())["calibration"]
    assert cal == shipped  # the shipped calibration is what its records give


def test_each_redshift_bin_of_the_sz_ensemble_has_its_own_sigma_and_95_percent_width():
    ensemble = FoldEnsemble(SHIPPED_ZOO / "sz-v1")
    bins = ensemble.manifest["calibration"]["z_bins"]
    x = np.random.default_rng(1).normal(0, 1e-6, (2, 96, 96, 1)).astype(np.float32)
    pred = ensemble.predict(x, z=np.array([0.05, 0.6]))
    for i, b in enumerate((bins[0], bins[-1])):
        assert pred.half_width_95[i] / pred.sigma[i] == pytest.approx(b["interval_95"])
        assert pred.sigma[i] >= b["sigma_dex"]  # the calibrated scatter, plus the members' spread


def test_an_edited_metrics_file_is_refused_like_a_changed_model(tmp_path):
    copy = tmp_path / "xray-v1"
    shutil.copytree(SHIPPED_ZOO / "xray-v1", copy)
    metrics = copy / "metrics.json"
    metrics.write_text(
        metrics.read_text().replace('"scatter_ratio": 0.88', '"scatter_ratio": 0.70')
    )
    with pytest.raises(ModelIntegrityError, match="metrics.json fails its integrity check"):
        verify_manifest(copy)
