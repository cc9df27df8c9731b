"""Detection subsets: the cross-fitted baseline, the model/baseline ratio, the joint gain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from survey_mass.catalog.schema import FLAG_PRIOR
from survey_mass.validate.detections import (
    cross_fitted_baseline,
    detection_table,
    joint_gain,
    own_sz_detections,
)


def clusters(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(14.2, 15.2, n)
    return pd.DataFrame(
        {
            "target_id": [f"c{i:05d}" for i in range(n)],
            "z": rng.uniform(0.03, 0.59, n),
            "log10_m500": truth,
        }
    )


def test_the_baseline_is_scored_on_clusters_its_line_never_saw():
    rng = np.random.default_rng(3)
    truth = rng.uniform(14.0, 15.0, 2000)
    observable = 0.7 * truth + 1.0 + 0.1 * rng.standard_normal(truth.size)  # log lambda, say
    pred = cross_fitted_baseline(observable, truth)
    residual = pred - truth
    assert np.isfinite(pred).all()
    assert np.median(residual) == pytest.approx(0.0, abs=0.01)
    assert residual.std() == pytest.approx(0.1 / 0.7, rel=0.1)  # the observable's own scatter


def test_a_model_with_half_the_baseline_scatter_scores_a_ratio_of_half_in_every_bin():
    rng = np.random.default_rng(4)
    joined = clusters()
    truth = joined["log10_m500"].to_numpy()
    joined["logm500_optical"] = truth + 0.1 * rng.standard_normal(truth.size)
    joined["logm500_optical_sigma"], joined["logm500_optical_half95"] = 0.1, 0.196
    richness = 10 ** (0.8 * (truth - 14.0) + 1.3 + 0.8 * 0.2 * rng.standard_normal(truth.size))
    detected = pd.DataFrame({"target_id": joined["target_id"], "lambda": richness})
    rows = detection_table(joined, detected.iloc[::2], "optical", "lambda")  # half are detected
    assert [r["bin"] for r in rows] == ["all", "z 0-0.1", "z 0.1-0.2", "z 0.2-0.4", "z 0.4-0.6"]
    assert rows[0]["n"] == 2000
    # the line regresses truth on lambda: its error is the noise shrunk by the spread of masses
    spread = 1.0 / np.sqrt(12)
    expected = spread * 0.2 / np.hypot(spread, 0.2)
    for row in rows:
        assert row["baseline_std_dex"] == pytest.approx(expected, rel=0.15)
        assert row["ratio"] == pytest.approx(0.1 / expected, rel=0.15)
        assert row["coverage_68"] == pytest.approx(0.683, abs=0.07)
        assert row["coverage_95"] == pytest.approx(0.95, abs=0.04)


def test_the_joint_gain_compares_the_same_informative_clusters():
    rng = np.random.default_rng(5)
    joined = clusters()
    truth = joined["log10_m500"].to_numpy()
    joined["logm500_xray"] = truth + 0.1 * rng.standard_normal(truth.size)
    joined["logm500_sz"] = truth + 0.1 * rng.standard_normal(truth.size)
    joined["logm500"] = (joined["logm500_xray"] + joined["logm500_sz"]) / 2
    joined["flags"] = np.where(joined["z"] > 0.3, FLAG_PRIOR["sz"], 0)  # SZ uninformative there
    gain = joint_gain(joined, ["xray", "sz"])
    assert gain["n"] == int((joined["z"] <= 0.3).sum())
    assert gain["ratio"] == pytest.approx(1 / np.sqrt(2), rel=0.08)
    assert set(gain["single_rms_dex"]) == {"xray", "sz"}


def test_sz_on_its_own_detections_is_scored_where_its_map_shows_the_cluster():
    rng = np.random.default_rng(6)
    joined = clusters()
    truth = joined["log10_m500"].to_numpy()
    # the map's S/N grows as M^1.6 with 0.1 dex of noise; the model has half of that scatter
    joined["sz_snr"] = 10 ** (
        1.6 * (truth - 14.5) + 0.66 + 1.6 * 0.1 * rng.standard_normal(truth.size)
    )
    joined["logm500_sz"] = truth + 0.05 * rng.standard_normal(truth.size)
    joined["logm500_sz_sigma"], joined["logm500_sz_half95"] = 0.05, 0.098
    table = own_sz_detections(joined)
    assert table["rows"][0]["n"] == int((joined["sz_snr"] >= 4.5).sum())
    assert table["rows"][0]["ratio"] == pytest.approx(0.5, rel=0.2)
