"""Held-out metrics: Gaussian-fit scatter, and the baseline calibrated fold by fold off the test fold."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from survey_mass.train.evaluate import (
    format_metrics,
    gaussian_fit,
    held_out_table,
    residual_metrics,
    summarise,
    write_metrics,
)
from survey_mass.train.folds import fold_split, mass_sorted_folds
from survey_mass.validate.baselines import Baseline, ScalingRelation
from survey_mass.zoo.manifest import sha256_file

BASELINE_SCATTER, CNN_SCATTER = 0.10, 0.05  # dex


def test_gaussian_fit_ignores_outlier_tails_that_inflate_the_std():
    rng = np.random.default_rng(0)
    delta = np.concatenate([rng.normal(0.01, 0.05, 1900), rng.uniform(-0.6, 0.6, 100)])
    mu, sigma = gaussian_fit(delta)
    assert mu == pytest.approx(0.01, abs=0.005)
    assert sigma == pytest.approx(0.05, rel=0.1)
    assert delta.std() > 0.08  # the std is dragged up by 5% of outliers
    assert np.isnan(gaussian_fit(delta[:10])).all()  # too few for a histogram


def test_residual_metrics_of_a_known_offset():
    log_true = np.linspace(14.0, 15.0, 100)
    m = residual_metrics(log_true, log_true + 0.03)
    assert m["n"] == 100
    assert m["bias"] == pytest.approx(0.03) and m["mae"] == pytest.approx(0.03)
    assert m["scatter"] == pytest.approx(0.0, abs=1e-12)
    assert residual_metrics([], []) == {"n": 0}


def _synthetic(n: int = 600, folds: int = 5, seed: int = 1):
    """Clusters whose proxy predicts log M with BASELINE_SCATTER, a 'CNN' with CNN_SCATTER."""
    rng = np.random.default_rng(seed)
    truth = pd.DataFrame(
        {
            "target_id": [f"C{i:04d}" for i in range(n)],
            "z": rng.uniform(0.02, 1.0, n),
            "log10_m500": rng.uniform(14.0, 15.0, n),
        }
    )
    # log M = 2 + 0.8 log10(proxy) + N(0, BASELINE_SCATTER)
    log_proxy = (truth["log10_m500"] - 2.0 + rng.normal(0, BASELINE_SCATTER, n)) / 0.8
    hduls = {}
    for tid, value in zip(truth["target_id"], log_proxy, strict=True):
        hdu = fits.PrimaryHDU(np.zeros((2, 2), np.float32))
        hdu.header["PROXY"] = float(10**value)
        hduls[tid] = fits.HDUList([hdu])
    cnn = truth["log10_m500"].to_numpy() + 0.01 + rng.normal(0, CNN_SCATTER, n)
    fold_of = mass_sorted_folds(truth["log10_m500"].to_numpy(), folds)
    records = []
    for k in range(folds):
        _, val, test = fold_split(fold_of, k)
        records.append(
            {
                "validation_ids": truth["target_id"].iloc[val].tolist(),
                "test_ids": truth["target_id"].iloc[test].tolist(),
                "test_pred": cnn[test].tolist(),
            }
        )
    return truth, hduls, records


def _synthetic_baseline() -> Baseline:
    return Baseline(
        "synthetic proxy", lambda hdul, z: hdul[0].header["PROXY"], ScalingRelation(0.0)
    )


def test_baseline_metrics_recover_a_known_scatter_on_held_out_clusters():
    truth, hduls, records = _synthetic()
    table = held_out_table(truth, records, _synthetic_baseline, hduls.__getitem__)
    assert sorted(table["target_id"]) == sorted(truth["target_id"])  # each cluster once
    summary = summarise(table, "synthetic-v1", "xray", "synthetic proxy")
    overall = summary["overall"]
    assert overall["baseline"]["scatter"] == pytest.approx(BASELINE_SCATTER, rel=0.1)
    assert overall["baseline"]["gauss_sigma"] == pytest.approx(BASELINE_SCATTER, rel=0.15)
    assert abs(overall["baseline"]["bias"]) < 0.01
    assert overall["cnn"]["bias"] == pytest.approx(0.01, abs=0.006)
    assert overall["scatter_ratio"] == pytest.approx(CNN_SCATTER / BASELINE_SCATTER, rel=0.15)
    assert overall["meets_scatter_target"] and overall["meets_bias_target"]
    bins = summary["z_bins"]
    assert [b["z_bin"] for b in bins] == [[0.0, 0.1], [0.1, 0.2], [0.2, 0.4], [0.4, 1.0]]
    assert sum(b["cnn"]["n"] for b in bins) == len(truth)
    for b in bins:
        z = table["z"]
        assert b["cnn"]["n"] == int(((z > b["z_bin"][0]) & (z <= b["z_bin"][1])).sum())


def test_a_cnn_no_better_than_its_baseline_misses_the_target():
    truth, hduls, records = _synthetic()
    for r in records:  # a 'CNN' with the baseline's scatter and a 0.05 dex bias
        ids = truth.set_index("target_id").loc[r["test_ids"], "log10_m500"].to_numpy()
        r["test_pred"] = (ids + 0.05 + np.random.default_rng(2).normal(0, 0.1, ids.size)).tolist()
    table = held_out_table(truth, records, _synthetic_baseline, hduls.__getitem__)
    summary = summarise(table, "synthetic-v1", "sz", "synthetic proxy")
    assert not summary["overall"]["meets_scatter_target"]
    assert not summary["overall"]["meets_bias_target"]
    text = format_metrics(summary)
    assert "synthetic proxy" in text and "MISSED" in text and "BIASED" in text
    assert len(text.splitlines()) == 2 + 4 + 1  # title, header, 4 z bins, overall


def test_records_of_unknown_clusters_are_refused():
    truth, hduls, records = _synthetic(n=100)
    records[0]["test_ids"][0] = "ELSEWHERE"
    with pytest.raises(ValueError, match="ELSEWHERE"):
        held_out_table(truth, records, _synthetic_baseline, hduls.__getitem__)


def test_metrics_file_is_valid_json_and_hashed(tmp_path):
    summary = {"overall": {"cnn": {"gauss_sigma": float("nan"), "scatter": 0.123456789}}}
    ref = write_metrics(tmp_path, summary)
    text = (tmp_path / "metrics.json").read_text()
    assert json.loads(text) == {"overall": {"cnn": {"gauss_sigma": None, "scatter": 0.12346}}}
    assert ref == {"file": "metrics.json", "sha256": sha256_file(tmp_path / "metrics.json")}
