"""The weak-lensing reference tables (catalogs/wl_*.toml), the combined one, and explicit mass
definitions: h conversions in astropy units and the refusal to compare different definitions.

Real tables are read from ../shared/data/weak_lensing through the ``shared_data`` fixture (skipped
when absent); the expectations come from the tables' PROVENANCE.md, not from this code's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomllib
from astropy import units as u
from astropy.coordinates import SkyCoord

from survey_mass.references import CatalogError, available_catalogs, load_definition, read_catalog
from survey_mass.references.combined import combine_tables, read_combined
from survey_mass.references.masses import (
    MassDefinitionError,
    comparable_log_masses,
    log_mass_at_h,
)

WL_TABLES = {"wl_cccp_meneacs": 100, "wl_locuss": 41, "wl_clash": 20, "wl_xxl_hsc": 136}
PRIORITY = list(WL_TABLES)


def wl_paths_in(shared_data: Path) -> dict[str, str]:
    """WL catalog name -> its CSV in the shared data (the definitions' ``local``, relocated)."""
    return {
        name: str(
            shared_data / Path(load_definition(name).file.local).relative_to("../shared/data")
        )
        for name in WL_TABLES
    }


@pytest.fixture(scope="module")
def wl_paths(shared_data) -> dict[str, str]:
    paths = wl_paths_in(shared_data)
    missing = [p for p in paths.values() if not Path(p).is_file()]
    if missing:
        pytest.skip(f"weak-lensing tables not found: {missing}")
    return paths


@pytest.fixture(scope="module")
def wl(wl_paths) -> dict[str, pd.DataFrame]:
    names = [*WL_TABLES, "wl_combined"]
    return {name: read_catalog(name, paths=wl_paths) for name in names}


def test_every_wl_table_reads_as_m500c_for_h_0_7_with_its_published_rows(wl):
    for name, rows in WL_TABLES.items():
        table = wl[name]
        assert len(table) == rows, name
        assert table.attrs["mass_definition"] == "M500c" and table.attrs["h"] == 0.7
        assert table.attrs["caveats"] and table.attrs["citation"]
        assert table["logm500"].notna().all() and table["logm500"].between(12.5, 15.5).all()
        assert table["ra"].between(0, 360).all() and table["z"].between(0.01, 1.5).all()


def test_published_masses_and_asymmetric_errors(wl):
    """A1689: 15.7 +- 2.9 (Herbonnet, NFW) and 12.57 +1.53/-1.40 (LoCuSS), in 1e14 Msun."""
    cccp = wl["wl_cccp_meneacs"].set_index("id")
    assert cccp.loc["A1689", "logm500"] == pytest.approx(np.log10(15.7e14))
    assert cccp.loc["A1689", "logm500_sigma"] == pytest.approx(2.9 / (15.7 * np.log(10)))
    locuss = wl["wl_locuss"].set_index("id")
    assert locuss.loc["Abell1689", "logm500"] == pytest.approx(np.log10(12.57e14))
    sigma = 0.5 * (1.53 + 1.40) / (12.57 * np.log(10))
    assert locuss.loc["Abell1689", "logm500_sigma"] == pytest.approx(sigma, rel=1e-2)
    assert locuss.loc["Abell1689", "err_hi_1e14"] == pytest.approx(1.53)


def test_combined_catalog_keeps_one_row_per_cluster_by_priority(wl):
    combined = wl["wl_combined"]
    # README of the data: 297 rows, 269 unique clusters within 1.5'
    assert len(combined) == 269 == sum(WL_TABLES.values()) - 28
    assert combined["source"].value_counts().to_dict() == {
        "wl_xxl_hsc": 136, "wl_cccp_meneacs": 100, "wl_locuss": 20, "wl_clash": 13,
    }  # fmt: skip
    assert (
        combined.attrs["mass_definition"] == "M500c"
        and "priority" in combined.attrs["combine_rule"]
    )
    coords = SkyCoord(combined["ra"].to_numpy() * u.deg, combined["dec"].to_numpy() * u.deg)
    _, sep, _ = coords.match_to_catalog_sky(coords, nthneighbor=2)
    assert (sep > 1.5 * u.arcmin).all()  # no two kept rows are one cluster
    # every dropped row lies within 1.5' of a kept row of a higher-priority table
    for rank, name in enumerate(PRIORITY):
        table = wl[name]
        kept_ids = set(combined.loc[combined["source"] == name, "id"])
        dropped = table[~table["id"].isin(kept_ids)]
        higher = combined[combined["source"].isin(PRIORITY[:rank])]
        if len(dropped):
            d = SkyCoord(dropped["ra"].to_numpy() * u.deg, dropped["dec"].to_numpy() * u.deg)
            h = SkyCoord(higher["ra"].to_numpy() * u.deg, higher["dec"].to_numpy() * u.deg)
            assert (d.match_to_catalog_sky(h)[1] <= 1.5 * u.arcmin).all(), name
    a209 = combined.set_index("id").loc["A209"]
    assert a209["source"] == "wl_cccp_meneacs"
    assert a209["duplicates"] == "wl_locuss:Abell0209; wl_clash:Abell 209"


def _table(ids, ra, dec, logm, **attrs) -> pd.DataFrame:
    frame = pd.DataFrame({"id": ids, "ra": ra, "dec": dec, "z": 0.2, "logm500": logm})
    frame.attrs.update(attrs)
    return frame


def test_combine_rule_on_a_synthetic_case():
    first = _table(["a", "b"], [10.0, 20.0], [0.0, 0.0], [14.0, 14.1])
    second = _table(["a2", "c", "c2"], [10.0 + 1.0 / 60, 30.0, 30.01], [0.0, 0.0, 0.0], 14.5)
    out = combine_tables({"first": first, "second": second}, 1.5 * u.arcmin)
    assert out["id"].tolist() == ["a", "b", "c", "c2"]  # within one table nothing is merged
    assert out["source"].tolist() == ["first", "first", "second", "second"]
    assert out.loc[0, "duplicates"] == "second:a2" and out.loc[0, "logm500"] == 14.0


def test_combining_tables_of_different_mass_definitions_is_refused():
    definition = load_definition("wl_combined")
    tables = {
        name: _table(["x"], [1.0 + i], [0.0], [14.0], mass_definition="M500c", h=0.7)
        for i, name in enumerate(definition.combine.sources)
    }
    tables["wl_clash"].attrs["mass_definition"] = "M200c"
    with pytest.raises(MassDefinitionError, match="wl_clash.*wl_combined"):
        read_combined(definition, tables.__getitem__)


def test_h_conversion_uses_astropy_units_and_scales_as_one_over_h():
    # a mass quoted for h = 1 (i.e. in Msun/h, h = 1) is 1/0.7 times larger for h = 0.7
    assert log_mass_at_h(14.0, 1.0, 0.7) == pytest.approx(14.0 + np.log10(1 / 0.7))
    assert log_mass_at_h(14.0, 0.7, 0.7) == pytest.approx(14.0)
    expected = (1e14 * u.Msun * 0.7 / 0.674).to(u.Msun).value
    assert 10 ** log_mass_at_h(14.0, 0.7, 0.674) == pytest.approx(expected)
    left = _table(["a"], [1.0], [0.0], [14.0], mass_definition="M500c", h=1.0)
    right = _table(["b"], [1.0], [0.0], [14.0], mass_definition="M500c", h=0.7)
    log_l, log_r, info = comparable_log_masses(left, right, "per_h", "h70")
    assert log_l[0] - log_r[0] == pytest.approx(-np.log10(0.7))
    assert info["h_conversion"]["per_h"] == [1.0, 0.7] and info["mass_definition"] == "M500c"


def test_different_mass_definitions_are_refused_unless_a_documented_conversion_is_asked():
    m500 = _table(["a"], [1.0], [0.0], [14.5], mass_definition="M500c", h=0.7)
    m200 = _table(["b"], [1.0], [0.0], [14.5], mass_definition="M200c", h=0.7)
    with pytest.raises(MassDefinitionError) as err:
        comparable_log_masses(m500, m200, "psz2", "some_m200c_table")
    message = str(err.value)
    assert "psz2 (M500c)" in message and "some_m200c_table (M200c)" in message
    assert "nfw_duffy08" in message  # the fix is named
    with pytest.raises(MassDefinitionError, match="unknown mass conversion"):
        comparable_log_masses(m500, m200, "psz2", "x", conversion="guess")
    log_l, log_r, info = comparable_log_masses(m500, m200, "psz2", "x", conversion="nfw_duffy08")
    assert info["conversion"] == "nfw_duffy08" and log_l[0] == 14.5
    assert -0.25 < log_r[0] - 14.5 < -0.08  # M500c is ~0.1-0.2 dex below M200c for an NFW halo


def test_a_mass_column_whose_unit_is_not_a_log_mass_is_refused():
    good = _table(["a"], [1.0], [0.0], [14.0], units={"logm500": "dex(solMass)"})
    bad = _table(["b"], [1.0], [0.0], [14.0], units={"logm500": "deg"})
    with pytest.raises(MassDefinitionError, match="not a log10 mass"):
        comparable_log_masses(good, bad, "good", "bad")


def test_every_catalog_with_masses_states_its_mass_definition_and_h():
    for name, path in available_catalogs().items():
        data = tomllib.loads(path.read_text())
        access = data.get("file") or data.get("mock") or data.get("vizier") or {}
        if access.get("mass") or data.get("combine"):
            assert data.get("mass_definition") == "M500c", name
            assert data.get("h") == 0.7, name
    assert load_definition("erass1").mass_definition == "M500c"  # default when a catalog has none


def test_an_unknown_mass_definition_in_a_toml_fails_at_load(tmp_path):
    text = Path(load_definition("wl_clash").definition_path).read_text()
    bad = tmp_path / "catalogs" / "bad.toml"
    bad.parent.mkdir()
    bad.write_text(text.replace('mass_definition = "M500c"', 'mass_definition = "M500"'))
    with pytest.raises(CatalogError, match="mass_definition"):
        load_definition(bad)


def test_xxl_defines_its_vizier_table():
    vizier = load_definition("wl_xxl_hsc").vizier
    assert vizier.catalogue == "J/ApJ/890/148/table2" and vizier.mass.column == "M500"


def _tiny_catalog(folder: Path, name: str, mass_definition: str, h: float) -> None:
    (folder / f"{name}.csv").write_text("name,ra,dec,z,m\na,10.0,1.0,0.2,3.0\nb,20.0,2.0,0.3,5.0\n")
    (folder / f"{name}.toml").write_text(
        f'name = "{name}"\ntitle = "t"\ncitation = "c"\nmass_definition = "{mass_definition}"\n'
        f'h = {h}\n[file]\nlocal = "catalogs/{name}.csv"\n'
        'columns = { id = "name", ra = "ra", dec = "dec", z = "z" }\n'
        'mass = { method = "column", column = "m", unit = "1e14 Msun", citation = "c" }\n'
    )


def test_report_jobs_refuse_mixed_definitions_and_convert_h(tmp_path, monkeypatch):
    from survey_mass.validate.job import ReportJob, run_report_job

    folder = tmp_path / "catalogs"
    folder.mkdir()
    _tiny_catalog(folder, "ours_m500c_h1", "M500c", 1.0)
    _tiny_catalog(folder, "theirs_m500c", "M500c", 0.7)
    _tiny_catalog(folder, "theirs_m200c", "M200c", 0.7)
    monkeypatch.setenv("SURVEY_MASS_CATALOGS", str(folder))
    comparison = {"catalog": "ours_m500c_h1", "against": ["theirs_m200c"]}
    job = ReportJob(out=str(tmp_path / "out"), comparison=[comparison])
    with pytest.raises(
        MassDefinitionError, match=r"ours_m500c_h1 \(M500c\).*theirs_m200c \(M200c\)"
    ):
        run_report_job(job)
    job = ReportJob(
        out=str(tmp_path / "out"), comparison=[{**comparison, "against": ["theirs_m500c"]}]
    )
    numbers = run_report_job(job)[0].numbers["references"]["theirs_m500c"]["estimates"]["logm500"]
    # same numbers quoted for h = 1 are 1/0.7 times larger for h = 0.7
    assert numbers["bias_dex"] == pytest.approx(-np.log10(0.7), abs=1e-9)
