"""The fresh-seed evaluation: numbers right on known residuals, training seeds refused, a real run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from survey_mass.errors import UserError
from survey_mass.spec.universe import UniverseSpec
from survey_mass.validate.evaluate import (
    estimate_table,
    in_massive_stratum,
    markdown,
    massive_sample,
    massive_table,
    psz2_detections,
    refuse_training_seed,
    run_evaluation,
    run_massive,
    training_seeds,
    write_results,
)
from survey_mass.zoo.registry import SHIPPED_ZOO


def synthetic(n: int = 4000, sigma: float = 0.1, bias: float = 0.02) -> pd.DataFrame:
    """Estimates with a known bias and honest Gaussian errors of ``sigma`` dex."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(14.0, 15.2, n)
    est = truth + bias + rng.normal(0, sigma, n)
    return pd.DataFrame(
        {
            "target_id": [f"c{i}" for i in range(n)],
            "z": rng.uniform(0.03, 0.99, n),
            "log10_m500": truth,
            "logm500_xray": est,
            "logm500_xray_sigma": np.full(n, sigma),
            "logm500": est,
            "logm500_sigma": np.full(n, sigma),
            "logm500_p97_5": est + 1.959964 * sigma,
        }
    )


def test_honest_gaussian_errors_cover_as_nominal_in_every_row():
    rows = estimate_table(synthetic(), "xray")
    assert [r["bin"] for r in rows][:5] == ["all", "z 0-0.1", "z 0.1-0.2", "z 0.2-0.4", "z 0.4-1"]
    assert len(rows) == 9 and rows[0]["n"] == 4000
    assert sum(r["n"] for r in rows[5:]) == 4000  # the quartiles split every cluster once
    everything = rows[0]
    assert everything["median_dex"] == pytest.approx(0.02, abs=0.01)
    assert everything["std_dex"] == pytest.approx(0.1, abs=0.005)
    unbiased = estimate_table(synthetic(bias=0.0), "xray")[0]  # a bias costs coverage
    assert unbiased["coverage_68"] == pytest.approx(0.683, abs=0.02)
    assert unbiased["coverage_95"] == pytest.approx(0.95, abs=0.01)
    assert everything["coverage_68"] < unbiased["coverage_68"]
    assert everything["slope"] == pytest.approx(1.0, abs=0.02)
    # quartiles of the *estimate*: the Eddington-like selection shows as a biased extreme quartile
    assert rows[5]["median_dex"] < everything["median_dex"] < rows[8]["median_dex"]


def test_the_massive_end_is_binned_in_true_mass_below_z_04():
    frame = synthetic()
    rows = massive_table(frame)
    expected = ((frame["z"] < 0.4) & (frame["log10_m500"] > 14.5)).sum()
    assert sum(r["n"] for r in rows) == expected
    assert rows[0]["xray"]["median_dex"] == pytest.approx(0.02, abs=0.03)


def test_the_massive_sample_flags_the_cones_planck_detections_once():
    cone, truth = massive_sample(5150, 4, {"physics": "v2"}, with_detections=True)
    detected = set(psz2_detections(UniverseSpec(seed=5150, physics="v2"), cone))
    assert set(truth.loc[truth["psz2_detected"], "target_id"]) == detected and detected
    massive = (truth["z"] < 0.4) & (truth["log10_m500"] > 14.5)
    assert (truth["psz2_detected"] | massive).all()  # nothing else was kept


def test_the_massive_run_weighs_every_detection_and_says_which(tmp_path, dask_client):
    mock = {"physics": "v2"}
    run = run_massive(
        5155, 4, ["xray"], {"xray": "xray-v2"}, mock, tmp_path, dask_client, detections=True
    )
    detected = set(psz2_detections(UniverseSpec(seed=5155, **mock), run.footprint))
    assert run.detected == detected
    weighed = run.joined.set_index("target_id")
    assert detected <= set(weighed.index)  # every detection went through the job
    assert weighed["logm500_xray"].notna().all()
    # the detections below the massive end were weighed only because they are detections
    assert not in_massive_stratum(weighed.loc[sorted(detected)]).all()
    assert in_massive_stratum(weighed).sum() + len(detected) >= len(weighed)


def test_a_training_seed_is_refused_by_name():
    manifest = json.loads((SHIPPED_ZOO / "xray-v1" / "manifest.json").read_text())
    assert 1001 in training_seeds(manifest)
    with pytest.raises(UserError, match="training or calibration seed of xray-v1"):
        refuse_training_seed(1001, {"xray-v1": manifest})
    refuse_training_seed(5150, {"xray-v1": manifest})


def test_results_go_between_markers_and_are_replaced_on_rerun(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nkept\n")
    write_results("first\n", results)
    write_results("second\n", results)
    text = results.read_text()
    assert "kept" in text and "second" in text and "first" not in text
    assert text.count("survey-mass evaluate: begin") == 1
    write_results("on v2\n", results, physics="v2")  # a block per physics, side by side
    text = results.read_text()
    assert "second" in text and "on v2" in text and "on mock physics v2" in text


def test_a_fresh_cone_weighed_by_the_production_path(tmp_path, dask_client):
    numbers = run_evaluation(
        5150,
        60,
        ["xray"],
        {"xray": "xray-v1"},
        {},
        tmp_path,
        "survey-mass evaluate --seed 5150",
        client=dask_client,
    )
    everything = numbers["tables"]["xray"][0]
    assert numbers["n_weighed"] == everything["n"] >= 40  # every mock cluster of the cone
    assert abs(everything["median_dex"]) < 0.1 and everything["std_dex"] < 0.15
    assert "| all |" in markdown(numbers) and (tmp_path / "evaluation.json").exists()
