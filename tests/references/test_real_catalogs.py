"""Real-data validation of the readers, the crossmatch and the report: published catalogs vs each other.

Reads ../shared/data through the ``real_catalog_paths`` fixture (skipped when absent). The
expectations come from the papers and the catalogs' provenance, not from this code's own output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy import units as u

from survey_mass.crossmatch.match import MatchSpec, partitioned_sky_match, sky_match
from survey_mass.references import name_key, read_catalog
from survey_mass.validate.job import load_report_job, run_report_job

REPO = Path(__file__).resolve().parents[2]
ROWS = {
    "sdss_redmapper": 26350,
    "des_redmapper": 21092,
    "psz2": 1653,
    "mcxc": 1743,
    "sptsz": 677,
    "act_dr5": 4195,
    "erass1": 26682,
    "deepplanck": 1094,
}


@pytest.fixture(scope="module")
def catalogs(real_catalog_paths):
    return {name: read_catalog(name, paths=real_catalog_paths) for name in real_catalog_paths}


def test_every_real_catalog_reads_with_its_published_row_count(catalogs):
    for name, table in catalogs.items():
        assert len(table) == ROWS[name], name
        assert table["ra"].between(0, 360).all() and table["dec"].between(-90, 90).all()
        if "logm500" in table:
            masses = table["logm500"].dropna()
            assert len(masses) > 0.5 * len(table) and masses.between(11.5, 15.6).all(), (
                name
            )  # MCXC reaches groups (~1e12)
            assert 13.8 < masses.median() < 14.8, name


def test_psz2_r500_inversion_reproduces_the_published_msz(catalogs):
    """clusterdb stored MSZ as an angle; DeepPlanck lists log10 MSZ itself for the same clusters."""
    psz2, deep = catalogs["psz2"], catalogs["deepplanck"]
    msz = psz2.assign(key=name_key(psz2["id"])).set_index("key")["logm500"]
    published = deep.assign(key=name_key(deep["id"])).set_index("key")["logm500_planck"]
    both = msz.reindex(published.index).dropna()
    assert len(both) == 1093  # one DeepPlanck cluster has a redshift that PSZ2 lacks
    np.testing.assert_allclose(both, published[both.index], atol=1e-5)


def test_deepplanck_positions_come_from_psz2_by_name(catalogs):
    deep, psz2 = catalogs["deepplanck"], catalogs["psz2"]
    pairs = sky_match(deep, psz2, MatchSpec(radius=1 * u.arcsec))
    assert len(pairs) == 1094
    assert (
        name_key(deep["id"].iloc[pairs["left"]]).to_numpy()
        == name_key(psz2["id"].iloc[pairs["right"]]).to_numpy()
    ).all()


def test_partitioned_crossmatch_of_real_catalogs_equals_whole_sky(catalogs):
    psz2, redmapper = catalogs["psz2"], catalogs["sdss_redmapper"]
    spec = MatchSpec(radius=5 * u.arcmin, mode="all", dz=0.05)
    whole = sky_match(psz2, redmapper, spec)
    assert 200 < len(whole) < 600
    pd.testing.assert_frame_equal(partitioned_sky_match(psz2, redmapper, spec, order=1), whole)


@pytest.fixture(scope="module")
def real_report(real_catalog_paths, tmp_path_factory):
    job = load_report_job(REPO / "jobs" / "real_catalogs_report.toml")
    out = tmp_path_factory.mktemp("real_report")
    # the job's weak-lensing section is tested in tests/validate/test_weak_lensing_report.py
    update = {"paths": real_catalog_paths, "out": str(out), "weak_lensing": None}
    run_report_job(job.model_copy(update=update))
    summary = json.loads((out / "summary.json").read_text())["comparisons"]
    return out, {(c["catalog"], c["reference"]): c for c in summary}


def test_deepplanck_against_psz2_reproduces_the_sz_papers_real_data_numbers(real_report):
    """de Andres et al.: (M_CNN - M_Planck)/M_CNN = +0.08 +- 0.21 over the 1,094 PSZ2 clusters."""
    _, rows = real_report
    row = rows[("deepplanck", "psz2")]
    assert row["n_matched"] == 1094 and row["n_with_masses"] == 1093
    assert 0.05 < row["frac_mean_all"] < 0.15 and 0.15 < row["frac_std_all"] < 0.25
    assert row["bias_dex"] > 0.03  # CNN masses above the hydrostatic-biased MSZ


def test_mass_ordering_between_real_catalogs(real_report):
    _, rows = real_report
    mcxc = rows[("psz2", "mcxc")]
    assert 300 < mcxc["n_matched"] < 800  # hundreds of clusters in both the SZ and X-ray catalogs
    assert (
        abs(mcxc["bias_dex"]) < 0.15 and mcxc["gauss_sigma_dex"] < 0.15
    )  # two hydrostatic-like masses
    # SPT-SZ masses are weak-lensing calibrated: above Planck's hydrostatic MSZ, as (1-b) ~ 0.8 says
    assert -0.2 < rows[("psz2", "sptsz")]["bias_dex"] < -0.03
    # richness masses scatter far more than SZ or X-ray masses
    assert rows[("sdss_redmapper", "psz2")]["gauss_sigma_dex"] > mcxc["gauss_sigma_dex"]
    assert 150 < rows[("sdss_redmapper", "psz2")]["n_matched"] < 500
    assert rows[("mcxc", "erass1")]["n_with_masses"] == 0 < rows[("mcxc", "erass1")]["n_matched"]


def test_real_report_pages_are_written_for_every_comparison(real_report):
    out, rows = real_report
    assert (out / "index.html").is_file()
    for row in rows.values():
        page = (out / row["report"]).read_text()
        assert "data:image/png;base64," in page or row["n_with_masses"] == 0
