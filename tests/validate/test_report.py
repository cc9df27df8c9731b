"""Validation metrics, the HTML + JSON report and the report command, on synthetic catalogs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from scipy import stats

from survey_mass.cli import main
from survey_mass.validate.metrics import (
    coverage,
    fractional_table,
    gaussian_fit,
    radial_dn_over_n,
    summarize,
)
from survey_mass.validate.report import InterpretationMap, build_report

from support.mass_catalog_factory import write_mass_catalog

LN10 = np.log(10.0)


def _expected_fraction_mean(mu, sigma):
    """E[(M_pred - M_ref)/M_pred] = E[1 - 10^-delta] for delta ~ N(mu, sigma)."""
    return 1.0 - np.exp(-LN10 * mu + 0.5 * (LN10 * sigma) ** 2)


def test_known_bias_and_scatter_are_recovered():
    rng = np.random.default_rng(11)
    n = 20000
    log_ref = rng.uniform(14.0, 15.2, n)
    z = rng.uniform(0.01, 1.0, n)
    log_pred = log_ref + rng.normal(0.05, 0.10, n)
    s = summarize(log_pred, log_ref, z, sigma_pred=np.full(n, 0.10))
    assert s.n == n
    assert s.bias_dex == pytest.approx(0.05, abs=0.003)
    assert s.gauss_mu_dex == pytest.approx(0.05, abs=0.004)
    assert s.gauss_sigma_dex == pytest.approx(0.10, abs=0.004) and s.gauss_method == "histogram fit"
    assert s.std_dex == pytest.approx(0.10, abs=0.003)
    folded_mean = 0.1 * np.sqrt(2 / np.pi) * np.exp(-0.125) + 0.05 * (1 - 2 * stats.norm.cdf(-0.5))
    assert s.mae_dex == pytest.approx(folded_mean, abs=0.003)  # mean of a folded normal
    rows = {r.label: r for r in s.fractional_by_bin}
    assert list(rows) == [
        "0 < z <= 0.1",
        "0.1 < z <= 0.2",
        "0.2 < z <= 0.4",
        "0.4 < z <= 1",
        "all",
        "log M > 14.7",
    ]
    for row in rows.values():
        assert row.mean == pytest.approx(_expected_fraction_mean(0.05, 0.10), abs=0.012)
    assert rows["all"].n == n and rows["log M > 14.7"].n == np.sum(log_ref > 14.7)
    assert sum(rows[k].n for k in list(rows)[:4]) == n
    # 68% interval of sigma = 0.1 around a +0.05 dex bias: Phi(0.5) - Phi(-1.5)
    assert s.coverage["68"] == pytest.approx(stats.norm.cdf(0.5) - stats.norm.cdf(-1.5), abs=0.01)
    assert s.coverage["95"] == pytest.approx(stats.norm.cdf(1.46) - stats.norm.cdf(-2.46), abs=0.01)


def test_gaussian_fit_ignores_outlier_tails_that_inflate_the_std():
    rng = np.random.default_rng(3)
    delta = np.concatenate([rng.normal(-0.02, 0.05, 1900), rng.uniform(0.5, 1.5, 100)])
    fit = gaussian_fit(delta)
    assert fit.sigma == pytest.approx(0.05, abs=0.005) and fit.mu == pytest.approx(-0.02, abs=0.005)
    assert delta.std() > 0.2
    few = gaussian_fit(np.array([0.1, 0.2, 0.3]))
    assert few.method == "moments" and few.mu == pytest.approx(0.2)


def test_bins_are_left_open_right_closed_and_need_a_finite_redshift():
    table = fractional_table([14.1] * 4, [14.0] * 4, [0.1, 0.1000001, 1.0, np.nan])
    counts = {row.label: row.n for row in table}
    assert counts == {
        "0 < z <= 0.1": 1,
        "0.1 < z <= 0.2": 1,
        "0.2 < z <= 0.4": 0,
        "0.4 < z <= 1": 1,
        "all": 4,
        "log M > 14.7": 0,
    }


def test_coverage_adds_the_reference_error_in_quadrature():
    cov, n = coverage([14.3], [14.0], [0.2], [0.25])  # |delta| 0.3 < sqrt(0.2^2 + 0.25^2) = 0.32
    assert cov == {"68": 1.0, "95": 1.0} and n == 1
    cov, _ = coverage([14.3], [14.0], [0.2])
    assert cov["68"] == 0.0 and cov["95"] == 1.0
    assert coverage([14.3], [14.0], [np.nan]) == (None, 0)


def test_coverage_uses_the_catalogs_own_95_percent_interval_when_it_has_one():
    # |delta| 0.45: outside 1.96 x 0.2 = 0.39, inside a heavy-tailed interval of half-width 0.5
    cov, _ = coverage([14.45], [14.0], [0.2])
    assert cov["95"] == 0.0
    cov, _ = coverage([14.45], [14.0], [0.2], half95_pred=[0.5])
    assert cov == {"68": 0.0, "95": 1.0}


def test_radial_dn_over_n_profile():
    image = np.ones((64, 64))
    yy, xx = np.indices(image.shape)
    r = np.hypot(yy - 31.5, xx - 31.5) / 20.0  # R500 = 20 pixels
    change = np.where(r < 0.5, 0.1, 0.0)
    edges, profile = radial_dn_over_n(
        image, change, r500_pix=20.0, edges_r500=[0, 0.25, 0.5, 1.0, 2.5, 3.0]
    )
    np.testing.assert_allclose(profile[:4], [0.1, 0.1, 0.0, 0.0])
    assert np.isnan(profile[4])  # the image's corners are 2.2 R500 out: nothing beyond 2.5
    with pytest.raises(ValueError, match="one shape"):
        radial_dn_over_n(image, change[:10], 20.0)


def _synthetic(n=600, seed=5, bias=0.08, scatter=0.12):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(140.0, 160.0, n)
    dec = rng.uniform(-10.0, 10.0, n)
    z = rng.uniform(0.03, 0.9, n)
    truth = rng.uniform(14.0, 15.2, n)
    reference = pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(n)],
            "ra": ra,
            "dec": dec,
            "z": z,
            "logm500": truth,
            "logm500_sigma": np.full(n, 0.05),
        }
    )
    offset = rng.normal(0, 10.0, (2, n)) / 3600.0  # 10" position noise
    predictions = pd.DataFrame(
        {
            "target_id": [f"T{i}" for i in range(n)],
            "ra": ra + offset[0],
            "dec": dec + offset[1],
            "z": z,
            "logm500": truth + rng.normal(bias, scatter, n),
            "logm500_sigma": np.full(n, scatter),
            "logm500_sz": truth + rng.normal(0.0, 0.2, n),
            "logm500_sz_sigma": np.full(n, 0.2),
        }
    )
    return predictions, reference


def _interpretation_maps():
    image = np.random.default_rng(0).poisson(5.0, (48, 48)).astype(float)
    change = np.outer(np.hanning(48), np.hanning(48))
    return [InterpretationMap("T1", image, change, r500_pix=16.0)]


def test_report_numbers_on_a_synthetic_case_with_known_bias_and_scatter(tmp_path):
    predictions, reference = _synthetic()
    positions_only = reference[["id", "ra", "dec"]].iloc[::3]
    result = build_report(
        predictions,
        {"truth": reference, "positions": positions_only},
        tmp_path,
        match_radius=60 * u.arcsec,
        dz=0.01,
        interpretation=_interpretation_maps(),
    )
    numbers = json.loads(
        result.json_path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON")
    )
    truth = numbers["references"]["truth"]
    assert truth["n_matched"] == 600 and truth["n_reference_matched"] == 600
    joint = truth["estimates"]["logm500"]
    assert joint["bias_dex"] == pytest.approx(0.08, abs=0.015)
    assert joint["gauss_sigma_dex"] == pytest.approx(0.12, abs=0.02)
    assert 0.6 < joint["coverage"]["68"] < 0.76  # sigma quoted honestly (0.12 with 0.05 reference)
    assert truth["estimates"]["logm500_sz"]["bias_dex"] == pytest.approx(0.0, abs=0.03)
    assert numbers["references"]["positions"]["n_matched"] == 200
    assert numbers["references"]["positions"]["estimates"] == {}
    assert numbers["interpretation"][0]["target_id"] == "T1"
    pairs = pd.read_csv(tmp_path / "matches_truth.csv")
    assert (
        pairs["id_pred"].str[1:] == pairs["id_ref"].str[1:]
    ).all()  # nearest match is the right one
    page = result.html_path.read_text()
    # 'truth': joint vs reference, residual PDF, per-bin bars, logm500_sz vs reference, residuals
    # vs z, coverage and the sky map; 'positions' (no masses): the sky map; 2 interpretation panels
    assert page.count("<img ") == 7 + 1 + 2
    assert "http" not in re.sub(
        r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page
    )  # self-contained


def test_report_without_masses_to_validate_names_the_columns(tmp_path):
    predictions, reference = _synthetic(n=10)
    with pytest.raises(Exception, match="no mass column to validate"):
        build_report(
            predictions.drop(columns=["logm500", "logm500_sz"]), {"truth": reference}, tmp_path
        )


@pytest.fixture
def catalogs_env(tmp_path, monkeypatch):
    """A mass catalog and a reference catalog definition, as a user would have them."""
    predictions, reference = _synthetic(n=300)
    catalog = write_mass_catalog(tmp_path / "run1", predictions, order=3, instruments=["sz"])
    (tmp_path / "catalogs").mkdir()
    reference.to_csv(tmp_path / "truth.csv", index=False)
    (tmp_path / "catalogs" / "truth.toml").write_text(
        textwrap.dedent("""
        name = "truth"
        title = "synthetic truth"
        citation = "this test"
        [file]
        local = "truth.csv"
        columns = { id = "id", ra = "ra", dec = "dec", z = "z" }
        mass = { method = "column", column = "logm500", unit = "log10 Msun", sigma_column = "logm500_sigma" }
    """)
    )
    monkeypatch.setenv("SURVEY_MASS_CATALOGS", str(tmp_path / "catalogs"))
    return tmp_path, catalog


def test_report_command_on_a_mass_catalog(catalogs_env, capsys):
    tmp_path, catalog = catalogs_env
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                catalog,
                "--against",
                "truth",
                "--out",
                str(out),
                "--radius",
                "60",
                "--dz",
                "0.01",
            ]
        )
        == 0
    )
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["references"]["truth"]["n_matched"] == 300
    assert numbers["prediction"]["n"] == 300
    assert "truth: 300 matched, bias +0.0" in capsys.readouterr().out


def test_report_command_job_and_errors(catalogs_env, capsys):
    tmp_path, catalog = catalogs_env
    job = tmp_path / "job.toml"
    job.write_text(
        f'out = "{tmp_path / "jobout"}"\n[[comparison]]\ncatalog = "{catalog}"\nagainst = ["truth"]\n'
    )
    assert main(["report", "--job", str(job)]) == 0
    summary = json.loads((tmp_path / "jobout" / "summary.json").read_text())
    assert summary["comparisons"][0]["n_matched"] == 300
    assert (tmp_path / "jobout" / "index.html").is_file()
    capsys.readouterr()
    assert main(["report", catalog, "--against", "nosuch", "--out", str(tmp_path / "x")]) == 2
    assert "unknown catalog 'nosuch'" in capsys.readouterr().err
    job.write_text('out = "x"\n[[comparison]]\ncatalog = "truth"\nagainst = []\nradius = 3\n')
    assert main(["report", "--job", str(job)]) == 2
    err = capsys.readouterr().err
    assert "comparison.0.against" in err and "comparison.0.radius: unknown key" in err


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {  // fires after every image has loaded or failed
  const widths = Array.from(document.images).map(i => (i.complete ? i.naturalWidth : -1));
  document.body.setAttribute('data-img-widths', widths.join(','));
  document.body.setAttribute('data-errors', window.__errors.join('|'));
});
</script>"""


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)
def test_report_opens_in_headless_chromium_and_every_plot_decodes(tmp_path):
    predictions, reference = _synthetic(n=200)
    result = build_report(
        predictions, {"truth": reference}, tmp_path / "r", interpretation=_interpretation_maps()
    )
    probe = result.html_path.with_name("probe.html")  # the report itself stays script-free
    probe.write_text(result.html_path.read_text().replace("</body>", _PROBE + "</body>"))
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'data-img-widths="([^"]*)"', run.stdout)
    assert found, f"the page did not finish loading: {run.stdout[:500]} {run.stderr[-1000:]}"
    widths = [int(w) for w in found.group(1).split(",")]
    assert len(widths) == 7 + 2 and all(w > 100 for w in widths), widths
    assert re.search(r'data-errors=""', run.stdout), "JavaScript errors while loading the report"


def test_report_on_a_mock_run_draws_the_truth_for_the_runs_footprint(tmp_path):
    pytest.importorskip(
        "survey_mass.mock.external", reason="the simulator's mock catalogs are not built"
    )
    from survey_mass.references import read_catalog

    footprint = {"kind": "cone", "ra": 150.0, "dec": 2.0, "radius_deg": 2.0}
    truth = read_catalog("mock_truth", mock_kwargs={"spec": {"seed": 42}, "footprint": footprint})
    rng = np.random.default_rng(2)
    run = truth.rename(columns={"id": "target_id"}).assign(
        logm500=truth["logm500"] + rng.normal(-0.03, 0.06, len(truth)), logm500_sigma=0.06
    )
    job = {"source": {"kind": "mock", "mock": {"seed": 42}}, "targets": {"footprint": footprint}}
    catalog = write_mass_catalog(tmp_path / "mockrun", run, order=5, job=job)
    out = tmp_path / "report"
    assert (
        main(["report", catalog, "--against", "mock_truth", "--out", str(out), "--radius", "1"])
        == 0
    )
    truth_block = json.loads((out / "report.json").read_text())["references"]["mock_truth"]
    assert truth_block["n_matched"] == len(truth) > 50
    assert truth_block["estimates"]["logm500"]["bias_dex"] == pytest.approx(-0.03, abs=0.02)
    page = (out / "report.html").read_text()
    assert "beside the Eddington expectation" in page  # bias against true mass, as a figure
