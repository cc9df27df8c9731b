"""External catalog definitions and readers: column maps, mass relations, access paths, errors."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.table import Table

from survey_mass import references as external
from survey_mass.physics.relations import (
    logm500_from_r500_deg,
    logm500_from_richness,
    theta500,
)
from survey_mass.references import (
    CatalogError,
    available_catalogs,
    load_definition,
    name_key,
    read_catalog,
    to_qtable,
)

MOCK = ["mock_redmapper", "mock_wl", "mock_psz"]


def test_every_shipped_definition_loads_and_cites_its_source(real_catalog_names):
    real = real_catalog_names
    known = available_catalogs()
    assert set(real + MOCK) <= set(known)
    for name in real + MOCK:
        definition = load_definition(name)
        assert definition.name == name and definition.citation
        mass = (definition.file or definition.vizier or definition.mock).mass
        if mass is not None:
            assert mass.citation, f"{name}: the mass relation must be cited"
    for name in real:
        file = load_definition(name).file
        assert file.url.startswith("https://") and file.local  # fetchable the way users do
    for name in MOCK:
        assert load_definition(name).mock.callable.startswith("survey_mass.mock.external:")


def _clusterdb_r500_deg(m500, z):
    """clusterdb notes/psz2.py, forward: M500 -> r500 [deg]."""
    rho_c = 1.360e11 + 1.224e11 * z + 1.224e11 * z**2 + 4.080e10 * z**3
    d_a = (4272.3498 * z - 1093.4370 * z**2 + 126.0632 * z**3) / (1.0 + z)
    return (m500 / (4.0 / 3.0 * np.pi * 500.0 * rho_c)) ** 0.3333 / d_a * 180.0 / np.pi


def test_r500_inversion_recovers_the_mass_clusterdb_started_from():
    log_m = np.array([13.9, 14.5, 15.2])
    z = np.array([0.05, 0.3, 0.9])
    np.testing.assert_allclose(
        logm500_from_r500_deg(_clusterdb_r500_deg(10**log_m, z), z), log_m, atol=1e-9
    )
    assert np.isnan(logm500_from_r500_deg([0.1, np.nan], [np.nan, 0.2])).all()


def test_richness_relation_at_pivot_and_mass_definition_conversion():
    # at the pivot, a 500c relation returns its normalisation (h converted)
    got = logm500_from_richness([40.0], [0.3], log10_m0=14.0, pivot=40.0, slope=1.2, m0_per_h=True)
    np.testing.assert_allclose(got, 14.0 - np.log10(0.7))
    doubled = logm500_from_richness(
        [80.0], [0.3], log10_m0=14.0, pivot=40.0, slope=1.2, m0_per_h=False
    )
    np.testing.assert_allclose(doubled, 14.0 + 1.2 * np.log10(2.0))
    # M500c is 50-75% of M200m for cluster concentrations (NFW, Duffy+08)
    m200m = logm500_from_richness(
        [40.0], [0.2], log10_m0=14.5, pivot=40.0, slope=1.3, m0_per_h=False
    )
    m500c = logm500_from_richness(
        [40.0], [0.2], log10_m0=14.5, pivot=40.0, slope=1.3, m0_per_h=False, mass_definition="200m"
    )
    assert np.log10(0.5) < (m500c - m200m)[0] < np.log10(0.75)


def test_theta500_of_a_coma_like_cluster():
    # M500 = 6e14 Msun at z = 0.023: R500 ~ 1.3 Mpc at D_A ~ 97 Mpc -> ~ 45 arcmin
    assert 40 * u.arcmin < theta500(np.log10(6e14), 0.023) < 50 * u.arcmin


@pytest.fixture
def catalog_dir(tmp_path, monkeypatch):
    """A private catalogs/ folder with small synthetic files, found through $SURVEY_MASS_CATALOGS."""
    root = tmp_path / "project"
    (root / "catalogs").mkdir(parents=True)
    (root / "data").mkdir()
    monkeypatch.setenv("SURVEY_MASS_CATALOGS", str(root / "catalogs"))
    monkeypatch.chdir(tmp_path)
    m500 = np.array([3e14, 6e14, 1e15])
    z = np.array([0.1, 0.25, -1.0])
    pd.DataFrame(
        {
            "NAME": ["SZ A", "SZ B", "SZ C"],
            "RA": [10.0, 20.0, 30.0],
            "DEC": [-5.0, 5.0, 15.0],
            "REDSHIFT": z,
            "R500": _clusterdb_r500_deg(m500, np.abs(z)),
        }
    ).to_csv(root / "data" / "sz.csv.gz", index=False)
    pd.DataFrame(
        {
            "cluster": ["SZA.fits", "SZB.fits", "SZX.fits"],
            "logm": [14.6, 14.9, 14.0],
            "ep": [0.06, 0.08, 0.1],
            "em": [0.04, 0.06, 0.1],
        }
    ).to_csv(root / "data" / "cnn.csv", index=False)
    (root / "catalogs" / "sz.toml").write_text(
        textwrap.dedent("""
        name = "sz"
        title = "test SZ"
        citation = "nobody 2024"
        [file]
        local = "data/sz.csv.gz"
        url = "https://example.invalid/sz.csv.gz"
        columns = { id = "NAME", ra = "RA", dec = "DEC", z = "REDSHIFT", extra = { r500_deg = "R500" } }
        mass = { method = "r500_deg", column = "R500", citation = "clusterdb" }
        [vizier]
        catalogue = "J/TEST/1/sz"
        columns = { id = "Name", ra = "_RAJ2000", dec = "_DEJ2000", z = "z" }
        mass = { method = "column", column = "MSZ", unit = "1e14 Msun", citation = "test" }
    """)
    )
    (root / "catalogs" / "cnn.toml").write_text(
        textwrap.dedent("""
        name = "cnn"
        title = "test CNN masses by name"
        citation = "nobody 2025"
        positions_from = "sz"
        [file]
        local = "data/cnn.csv"
        id_suffix = ".fits"
        columns = { id = "cluster" }
        mass = { method = "column", column = "logm", unit = "log10 Msun", sigma_plus = "ep", sigma_minus = "em" }
    """)
    )
    return root, m500, z


def test_local_file_read_into_standard_columns_with_units(catalog_dir):
    _, m500, _ = catalog_dir
    table = read_catalog("sz")
    assert list(table.columns[:6]) == ["id", "ra", "dec", "z", "logm500", "logm500_sigma"]
    assert table["id"].tolist() == ["SZ A", "SZ B", "SZ C"]
    assert np.isnan(table["z"][2]) and np.isnan(table["logm500"][2])  # z = -1 means unknown
    np.testing.assert_allclose(table["logm500"][:2], np.log10(m500[:2]), atol=1e-9)
    assert table.attrs["units"]["ra"] == "deg" and "clusterdb" in table.attrs["mass_relation"]
    qtable = to_qtable(table)
    assert qtable["ra"].unit == u.deg and qtable["logm500"].unit == u.dex(u.Msun)
    assert qtable.meta["catalog"] == "sz"


def test_positions_joined_by_name_and_asymmetric_errors_averaged(catalog_dir):
    table = read_catalog("cnn")
    assert table["id"].tolist() == ["SZA", "SZB"]  # SZX has no position in 'sz': dropped
    np.testing.assert_allclose(table["ra"], [10.0, 20.0])
    np.testing.assert_allclose(table["z"], [0.1, 0.25])  # taken from the positions catalog
    np.testing.assert_allclose(table["logm500_sigma"], [0.05, 0.07])
    assert table.attrs["positions_from"] == "sz"


def test_paths_override_the_definitions_local_file(catalog_dir, tmp_path):
    root, _, _ = catalog_dir
    other = tmp_path / "elsewhere.csv"
    pd.read_csv(root / "data" / "sz.csv.gz").head(1).to_csv(other, index=False)
    assert len(read_catalog("sz", paths={"sz": other})) == 1


def test_no_network_unless_allowed(catalog_dir, monkeypatch):
    root, _, _ = catalog_dir
    (root / "data" / "sz.csv.gz").unlink()
    with pytest.raises(
        CatalogError, match=r"no local file at .*sz.csv.gz.*--network.*example.invalid"
    ):
        read_catalog("sz")
    with pytest.raises(CatalogError, match="needs the network"):
        read_catalog("sz", via="vizier")


def test_vizier_access_maps_vizier_columns(catalog_dir, monkeypatch):
    asked = {}

    class FakeVizier:  # the network is the only thing replaced
        def __init__(self, columns, row_limit):
            asked.update(columns=columns, row_limit=row_limit)

        def get_catalogs(self, catalogue):
            asked["catalogue"] = catalogue
            return [
                Table(
                    {
                        "Name": ["PSZ2 G1"],
                        "_RAJ2000": [1.5],
                        "_DEJ2000": [-2.0],
                        "z": [0.2],
                        "MSZ": [5.0],
                    }
                )
            ]

    import astroquery.vizier

    monkeypatch.setattr(astroquery.vizier, "Vizier", FakeVizier)
    table = read_catalog("sz", via="vizier", network=True)
    assert asked == {
        "columns": ["**", "_RAJ2000", "_DEJ2000"],
        "row_limit": -1,
        "catalogue": "J/TEST/1/sz",
    }
    assert table["id"][0] == "PSZ2 G1" and table["ra"][0] == 1.5
    np.testing.assert_allclose(table["logm500"], np.log10(5e14))


def test_missing_column_names_the_definition_to_fix(catalog_dir):
    root, _, _ = catalog_dir
    text = (root / "catalogs" / "sz.toml").read_text().replace('z = "REDSHIFT"', 'z = "ZED"', 1)
    (root / "catalogs" / "sz.toml").write_text(text)
    with pytest.raises(CatalogError, match=r"no column\(s\) \['ZED'\].*sz.toml"):
        read_catalog("sz")


def test_unknown_catalog_lists_the_known_ones(catalog_dir):
    with pytest.raises(CatalogError, match=r"unknown catalog .nope.; known: .*\bcnn\b.*\bsz\b"):
        read_catalog("nope")


def test_mock_reader_calls_the_simulator_function(tmp_path, monkeypatch):
    module = tmp_path / "fake_sim.py"
    module.write_text(
        textwrap.dedent("""
        import pandas as pd
        def mock_redmapper(seed=0, n=3):
            return pd.DataFrame({"name": [f"RM{i}" for i in range(n)], "RA": [1.0] * n, "dec": [2.0] * n,
                                 "redshift": [0.2] * n, "lambda": [40.0] * n, "target_id": ["M1"] * n})
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    definition = load_definition("mock_redmapper")
    mock = definition.mock.model_copy(update={"callable": "fake_sim:mock_redmapper"})
    table = read_catalog(definition.model_copy(update={"mock": mock}), mock_kwargs={"n": 4})
    assert len(table) == 4 and table["richness"].tolist() == [40.0] * 4
    np.testing.assert_allclose(
        table["logm500"], 14.230449
    )  # the universe's relation at lambda = 40
    sys.modules.pop("fake_sim", None)


def test_mock_catalog_without_simulator_says_what_is_missing(monkeypatch):
    definition = load_definition("mock_wl")
    mock = definition.mock.model_copy(update={"callable": "survey_mass.mock.not_built:mock_wl"})
    with pytest.raises(CatalogError, match="module 'survey_mass.mock.not_built' is not available"):
        read_catalog(definition.model_copy(update={"mock": mock}))


def test_name_key_ignores_case_and_spaces():
    assert name_key(pd.Series(["PSZ2 G000.04+45.13", "psz2g000.04+45.13"])).nunique() == 1


def test_catalog_dirs_skip_missing_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("SURVEY_MASS_CATALOGS", str(tmp_path / "absent"))
    assert tmp_path / "absent" not in external.catalog_dirs()


def test_mock_catalogs_from_the_simulator_share_the_real_readers():
    pytest.importorskip(
        "survey_mass.mock.external", reason="the simulator's mock catalogs are not built"
    )
    kwargs = {
        "spec": {"seed": 42},
        "footprint": {"kind": "cone", "ra": 150.0, "dec": 2.0, "radius_deg": 2.0},
    }
    truth = read_catalog("mock_truth", mock_kwargs=kwargs)
    redmapper = read_catalog("mock_redmapper", mock_kwargs=kwargs)
    assert len(truth) > len(redmapper) > 10  # redMaPPer keeps lambda >= 20 only
    assert redmapper["target_id"].isin(truth["id"]).all()
    matched = truth.set_index("id").loc[redmapper["target_id"], "logm500"].to_numpy()
    residual = redmapper["logm500"].to_numpy() - matched
    assert abs(np.median(residual)) < 0.15 and 0.05 < residual.std() < 0.35  # richness-mass scatter
    with pytest.raises(CatalogError, match="cannot take"):
        read_catalog("mock_truth", mock_kwargs={"spec": {"seed": 42}})  # no footprint
