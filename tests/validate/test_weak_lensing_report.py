"""The weak-lensing report (validate/weak_lensing.py): real tables from ../shared/data through the
``shared_data`` / ``real_catalog_paths`` fixtures (skipped when absent), checked against an
independent astropy + numpy computation; the mock side; refusals; the shipped job's section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from survey_mass.references import read_catalog
from survey_mass.references.masses import MassDefinitionError
from survey_mass.validate.job import load_report_job
from survey_mass.validate.weak_lensing import (
    WeakLensingSpec,
    build_weak_lensing_report,
    headline_lines,
    matched_pairs,
)

REPO = Path(__file__).resolve().parents[2]
WL = ("wl_cccp_meneacs", "wl_locuss", "wl_clash", "wl_xxl_hsc")
SMALL_MOCK = {"kind": "cone", "ra": 150.0, "dec": 2.0, "radius_deg": 6.0}


@pytest.fixture(scope="module")
def paths(shared_data, real_catalog_paths) -> dict[str, str]:
    from survey_mass.references import load_definition

    wl = {
        name: str(
            shared_data / Path(load_definition(name).file.local).relative_to("../shared/data")
        )
        for name in WL
    }
    if not all(Path(p).is_file() for p in wl.values()):
        pytest.skip(f"weak-lensing tables not found under {shared_data / 'weak_lensing'}")
    return {**real_catalog_paths, **wl}


def _loader(paths):
    cache = {}

    def load(name, kwargs=None):
        key = (name, json.dumps(kwargs, sort_keys=True))
        if key not in cache:
            cache[key] = read_catalog(name, paths=paths, mock_kwargs=kwargs)
        return cache[key]

    return load


@pytest.fixture(scope="module")
def report(paths, tmp_path_factory):
    """The shipped job's WL section, on a smaller mock footprint and a missing own catalog."""
    pytest.importorskip("survey_mass.mock.external", reason="the simulator is not built")
    spec = load_report_job(REPO / "jobs" / "real_catalogs_report.toml").weak_lensing
    out = tmp_path_factory.mktemp("wl")
    mock = spec.mock.model_copy(
        update={"footprint": SMALL_MOCK, "counterparts": {"psz2": "mock_psz"}}
    )
    spec = spec.model_copy(
        update={"catalogs": ["psz2", "mcxc", str(out / "no_such_run")], "mock": mock}
    )
    result = build_weak_lensing_report(spec, _loader(paths), lambda _: {}, out)
    return spec, out, json.loads(result.json_path.read_text()), result


def _row(numbers, catalog, reference):
    return next(
        r for r in numbers["real"] + numbers["mock"]
        if r["catalog"] == catalog and r["reference"] == reference
    )  # fmt: skip


def _independent_cccp_x_mcxc(paths, radius=3 * u.arcmin, dz=0.05):
    """CCCP+MENeaCS x MCXC from the raw CSVs with SkyCoord.match_to_catalog_sky and numpy only."""
    wl = pd.read_csv(paths["wl_cccp_meneacs"])
    mcxc = pd.read_csv(paths["mcxc"])
    c_wl = SkyCoord(wl["ra_deg"].to_numpy() * u.deg, wl["dec_deg"].to_numpy() * u.deg)
    c_x = SkyCoord(mcxc["RAdeg"].to_numpy() * u.deg, mcxc["DEdeg"].to_numpy() * u.deg)
    z_wl, z_x = wl["z"].to_numpy(), mcxc["z"].to_numpy()
    chosen = np.full(len(wl), -1)
    for nth in range(5, 0, -1):  # the nearest neighbour that passes wins: walk outward-in
        idx, sep, _ = c_wl.match_to_catalog_sky(c_x, nthneighbor=nth)
        ok = (sep <= radius) & (np.abs(z_x[idx] - z_wl) <= dz * (1 + z_wl))
        chosen[ok] = idx[ok]
    rows = np.flatnonzero(chosen >= 0)
    delta = np.log10(mcxc["M500"].to_numpy()[chosen[rows]] / wl["m500_wl_1e14"].to_numpy()[rows])
    return wl["name"].to_numpy()[rows], mcxc["MCXC"].to_numpy()[chosen[rows]], delta


def test_cccp_x_mcxc_agrees_with_an_independent_astropy_numpy_computation(report, paths):
    spec, out, numbers, _ = report
    wl_ids, mcxc_ids, delta = _independent_cccp_x_mcxc(paths)
    pairs = pd.read_csv(out / "pairs_mcxc_vs_wl_cccp_meneacs.csv")
    assert pairs["wl_id"].tolist() == wl_ids.tolist()
    assert pairs["id"].str.strip().tolist() == [str(i).strip() for i in mcxc_ids]
    row = _row(numbers, "mcxc", "wl_cccp_meneacs")
    assert row["n_matched"] == row["n"] == len(delta) > 50
    assert row["median_dex"] == pytest.approx(np.median(delta), abs=1e-9)
    assert row["mean_dex"] == pytest.approx(delta.mean(), abs=1e-9)
    assert row["scatter_dex"] == pytest.approx(delta.std(ddof=1), abs=1e-9)
    assert row["one_minus_b"] == pytest.approx(10 ** delta.mean(), abs=1e-9)
    boot = delta[
        np.random.default_rng(spec.seed).integers(0, len(delta), (spec.bootstrap, len(delta)))
    ]
    lo, hi = np.percentile(boot.mean(axis=1), [16, 84])
    assert row["mean_68"] == pytest.approx([lo, hi], abs=1e-9)
    assert row["one_minus_b_68"] == pytest.approx([10**lo, 10**hi], abs=1e-9)


def test_hydrostatic_masses_sit_below_weak_lensing_masses(report):
    """README of the data: MCXC and PSZ2 MSZ below WL by (1-b) ~ 0.8; scatter ~0.15-0.2 dex."""
    _, _, numbers, _ = report
    for catalog in ("psz2", "mcxc"):
        row = _row(numbers, catalog, "wl_combined")
        assert row["n"] > 80
        assert 0.7 < row["one_minus_b"] < 0.95 and row["one_minus_b_68"][1] < 1.0, catalog
        assert 0.1 < row["scatter_dex"] < 0.3
        assert row["median_68"][0] < row["median_dex"] < row["median_68"][1]
        assert set(row["n_by_source"]) <= {*WL}


def test_mock_side_by_side_and_pages(report):
    spec, out, numbers, result = report
    side = {r["catalog"]: r for r in numbers["side_by_side"]}
    assert side["psz2"]["mock_catalog"] == "mock_psz" and side["psz2"]["real"]["n"] > 80
    assert side["mcxc"]["mock_catalog"] is None
    truth = side["(truth)"]["mock"]
    assert truth["reference"] == "mock_wl" and truth["n"] > 10
    assert abs(truth["median_dex"]) < 0.1  # the mock WL is nearly unbiased against the truth
    assert numbers["skipped"][0]["catalog"].endswith("no_such_run")
    assert numbers["references"]["wl_combined"]["rows"] == 269
    page = result.html_path.read_text()
    assert page.count("data:image/png;base64,") >= 10 and "Real sky beside the mock survey" in page
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(line.lstrip().startswith("psz2") for line in headline_lines(numbers))


def test_a_catalog_of_another_mass_definition_is_refused_by_name(paths):
    wl = read_catalog("wl_cccp_meneacs", paths=paths)
    m200 = wl.copy()
    m200.attrs = {**wl.attrs, "mass_definition": "M200c"}
    spec = WeakLensingSpec(catalogs=["x"], references=["wl_cccp_meneacs"])
    with pytest.raises(MassDefinitionError, match=r"my_m200c \(M200c\).*wl_cccp_meneacs \(M500c\)"):
        matched_pairs(m200, wl, spec, ("my_m200c", "wl_cccp_meneacs"))
    converted = spec.model_copy(update={"conversion": "nfw_duffy08"})
    pairs = matched_pairs(m200, wl, converted, ("my_m200c", "wl_cccp_meneacs"))
    assert len(pairs) == 100 and (pairs["logm"] < pairs["logm_wl"]).all()


def test_the_shipped_job_compares_the_four_tables_and_the_combined_one():
    spec = load_report_job(REPO / "jobs" / "real_catalogs_report.toml").weak_lensing
    assert spec.references == [*WL, "wl_combined"]
    assert {"psz2", "mcxc", "deepplanck", "sdss_redmapper"} <= set(spec.catalogs)
    assert spec.radius_arcmin == 3.0 and spec.dz_scaled == 0.05
    assert spec.mock.counterparts == {"psz2": "mock_psz", "sdss_redmapper": "mock_redmapper"}
