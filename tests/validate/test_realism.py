"""The v2 mock survey held to the real sky (issue 15), through ``survey-mass report --realism``.

Tolerances (README, "How realistic is the mock survey"): counts per deg^2 per z bin within 25% + 2
sigma (Poisson, real and mock), median lambda and median Y_500 at fixed MSZ within 0.05 dex + 2
sigma (standard errors of the medians), y-map noise rms and autocorrelation FWHM within 15%. The
report is built once (~6 s); every test reads its JSON. Skips where ../shared/data is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from survey_mass.cli import main
from survey_mass.spec.universe import UniverseSpec
from survey_mass.validate import realism


@pytest.fixture(scope="module")
def report(shared_data, tmp_path_factory, monkeypatch_module):
    out = tmp_path_factory.mktemp("realism")
    monkeypatch_module.setenv("SURVEY_MASS_SHARED_DATA", str(shared_data))
    assert main(["report", "--realism", "--out", str(out)]) == 0
    return out, json.loads((out / "realism.json").read_text())


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _failures(rows):
    return [r for r in rows if not r["ok"]]


def test_report_files_and_the_v2_universe(report):
    out, numbers = report
    assert numbers["universe"]["physics"] == "v2"
    html = (out / "realism.html").read_text()
    for name in ("counts", "mass", "ymaps"):
        assert (out / f"realism_{name}.png").stat().st_size > 1000
        assert f"realism_{name}.png" in html
    assert numbers["tolerance"] == {"counts": 0.25, "dex": 0.05, "noise": 0.15}


def test_psz2_counts_per_redshift_bin(report):
    rows = report[1]["psz2_counts"]
    assert len(rows) == 5 and all(r["n_real"] > 100 and r["n_mock"] > 100 for r in rows)
    assert not _failures(rows), _failures(rows)


def test_redmapper_counts_per_redshift_bin(report):
    rows = report[1]["redmapper_counts"]
    assert len(rows) == 9 and all(r["n_mock"] > 50 for r in rows)
    assert not _failures(rows), _failures(rows)
    total_real = sum(r["n_real"] for r in rows) / realism.REAL_AREA_DEG2["redmapper"]
    total_mock = sum(r["n_mock"] for r in rows) / realism.MOCK_RM_AREA_DEG2
    assert total_mock == pytest.approx(total_real, rel=0.15)  # lambda >= 20 per deg^2


def test_richness_at_fixed_msz(report):
    rows = report[1]["lambda_at_msz"]
    assert all(r["n_real"] >= 30 for r in rows)
    assert not _failures(rows), _failures(rows)


def test_y500_at_fixed_msz(report):
    numbers = report[1]
    assert numbers["deepplanck_y_relation"]["rms_dex"] < 0.02  # Y_500 is a function of M_CNN
    assert not _failures(numbers["y500_at_msz"]), numbers["y500_at_msz"]


def test_y_noise_rms_and_autocorrelation(report):
    noise = report[1]["y_noise"]
    assert noise["rms"]["real"] == pytest.approx(1.60e-6, rel=0.02)
    assert noise["acf_fwhm_px"]["real"] == pytest.approx(7.0, rel=0.05)
    for key in ("rms", "acf_fwhm_px"):
        assert noise[key]["ok"], noise[key]


def test_hydrostatic_bias_in_the_signal(report):
    """The real cutout's aperture Y over its mock twin's: ~0.5 with v1, near 1 within scatter v2."""
    ratio = report[1]["y_maps"]["aperture_y_real_over_mock_twin"]
    assert 0.6 < ratio < 1.4


def test_v1_noise_is_too_red(shared_data):
    """The compatibility physics keeps its known flaw: the switch is what fixes it."""
    real = realism.load_real_sky(shared_data)
    v1 = realism.y_map_numbers(real, UniverseSpec())
    v2 = realism.y_map_numbers(real, UniverseSpec(physics="v2"))
    assert v1["mock"]["acf_fwhm_px"] > 1.5 * v1["real"]["acf_fwhm_px"]
    assert abs(v2["mock"]["acf_fwhm_px"] / v2["real"]["acf_fwhm_px"] - 1) < 0.15


def test_noise_stats_of_white_noise():
    """The estimator itself: white noise has unit rms and a one-pixel-wide autocorrelation."""
    rng = np.random.default_rng(0)
    stats = realism.noise_stats(rng.standard_normal((96, 96)))
    assert stats["rms"] == pytest.approx(1.0, rel=0.03)
    assert stats["acf_fwhm_px"] < 1.5
