"""Exports round-trip through astropy with real units and no warning, and open in TOPCAT (STIL)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.io.votable import parse
from astropy.io.votable.ucd import check_ucd
from astropy.table import QTable, Table

from survey_mass.catalog.export import EXTNAME, FORMATS, PROVENANCE, export
from survey_mass.catalog.paths import CATALOG, CatalogLayout
from survey_mass.catalog.schema import catalog_schema
from survey_mass.cli import main
from survey_mass.errors import UserError

from support.mass_catalog_factory import write_mass_catalog

INSTRUMENTS = ["sz", "xray"]
SCHEMA = catalog_schema(INSTRUMENTS)
LOG_MASS = ["logm500", *(f"logm500_{i}" for i in INSTRUMENTS)]
LOG_MASS += [f"logm500_{p}" for p in ("p16", "p84", "p2_5", "p97_5")]
WIDTHS = [n for n in SCHEMA.names if n.endswith(("_sigma", "_half95", "_spread"))]
UNITS = {"ra": u.deg, "dec": u.deg} | dict.fromkeys(LOG_MASS, u.dex(u.Msun))
UNITS |= dict.fromkeys(WIDTHS, u.dex)
EMPTY = "SELECT * FROM catalog WHERE false"
#: how VOTable (and so TOPCAT) spells the units: CDS syntax, which astropy reads VOTable 1.3 with
CDS = {"deg": "deg", "dex(solMass)": "[solMass]", "dex": "[-]"}
MASKED_DEX = pytest.mark.xfail(
    raises=TypeError,
    strict=True,
    reason="astropy reads VOTable columns masked, and a masked Quantity cannot hold dex units",
)
READS = [
    pytest.param(
        suffix, cls, marks=[MASKED_DEX] if (FORMATS[suffix], cls) == ("votable", QTable) else []
    )
    for suffix in FORMATS
    for cls in (Table, QTable)
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    rows = pd.DataFrame(
        {
            "target_id": [f"cl{i:03d}" for i in range(8)],
            "ra": np.linspace(3.0, 350.0, 8),
            "dec": np.linspace(-70.0, 70.0, 8),
            "z": np.linspace(0.05, 0.9, 8),
            "logm500": np.linspace(13.9, 15.2, 8),
        }
    )
    root = tmp_path_factory.mktemp("export") / "cat"
    return write_mass_catalog(root, rows, 1, INSTRUMENTS, job={"name": "export-test"})


def _read(path: Path, cls: type[Table]) -> Table:
    """``cls.read(path)`` with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return cls.read(path)


def _values(column) -> np.ndarray:
    """Plain values of a column of any reader: Quantity values, text for FITS bytes."""
    values = np.asarray(getattr(column, "value", column))
    return values.astype(str) if values.dtype.kind == "S" else values


@pytest.mark.parametrize(("suffix", "cls"), READS)
def test_every_format_round_trips_columns_values_and_units_without_warnings(
    catalog, tmp_path, suffix, cls
):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dest = export(catalog, str(tmp_path / f"cat{suffix}"))
    back = _read(dest, cls)
    assert back.colnames == SCHEMA.names  # the schema's columns in its order, no hive keys
    files = [p.path for p in CatalogLayout(catalog).partitions(CATALOG)]
    truth = ds.dataset(files, format="parquet").to_table().to_pandas().sort_values("target_id")
    order = np.argsort(_values(back["target_id"]))
    for name in SCHEMA.names:
        np.testing.assert_array_equal(_values(back[name])[order], truth[name], err_msg=name)
    if suffix == ".csv":
        return
    for name in SCHEMA.names:
        assert back[name].unit == UNITS.get(name), name
        meta = {k.decode(): v.decode() for k, v in SCHEMA.field(name).metadata.items()}
        assert " ".join(back[name].info.description.split()) == meta["description"]  # VOTable wraps
        assert back[name].info.meta["ucd"] == meta["ucd"]


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_an_empty_result_still_has_the_columns_and_units(catalog, tmp_path, suffix):
    back = _read(export(catalog, str(tmp_path / f"none{suffix}"), EMPTY), Table)
    assert len(back) == 0 and back.colnames == SCHEMA.names
    if suffix != ".csv":
        assert back["logm500"].unit == u.dex(u.Msun) and back["ra"].unit == u.deg


def test_a_query_keeps_the_schema_order_and_its_computed_columns(catalog, tmp_path):
    sql = "SELECT dec, logm500 - 14 AS dm, ra FROM catalog"
    back = _read(export(catalog, str(tmp_path / "some.ecsv"), sql), QTable)
    assert back.colnames == ["ra", "dec", "dm"]
    assert back["ra"].unit == u.deg and back["dm"].unit is None


def test_fits_is_fits_plus_with_column_keywords_and_no_dex_tunit(catalog, tmp_path):
    dest = export(catalog, str(tmp_path / "cat.fits"))
    with fits.open(dest) as hdus:
        primary, header = hdus[0].header, hdus[1].header
        votable = parse(io.BytesIO(hdus[0].data.tobytes()))
    assert list(primary)[:5] == ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "VOTMETA"]
    assert [f.unit for f in votable.get_first_table().fields][1] == u.deg
    assert header["EXTNAME"] == EXTNAME and header["JOBNAME"] == "export-test"
    columns = {header[f"TTYPE{i}"]: i for i in range(1, header["TFIELDS"] + 1)}
    assert header[f"TUNIT{columns['ra']}"] == "deg"
    assert f"TUNIT{columns['logm500']}" not in header  # FITS has no dex: units in astropy's YAML
    assert header[f"TUCD{columns['logm500']}"] == "phys.mass"
    assert header[f"TCOMM{columns['ra']}"] == "right ascension, ICRS"


def test_votable_has_coosys_for_positions_and_provenance_infos(catalog, tmp_path):
    votable = parse(export(catalog, str(tmp_path / "cat.vot")))
    resource = votable.resources[0]
    (coosys,) = resource.coordinate_systems
    assert coosys.system == "ICRS"
    fields = {f.name: f for f in resource.tables[0].fields}
    assert fields["ra"].ref == fields["dec"].ref == coosys.ID
    assert all(f.description and f.ucd for f in fields.values())
    assert {i.name: i.value for i in resource.infos} == {"JOBNAME": "export-test"}


def test_fits_records_the_jobs_provenance(mock_catalog, tmp_path):
    _, root, summary = mock_catalog
    dest = export(str(root), str(tmp_path / "cat.fits"))
    back = _read(dest, QTable)
    assert len(back) == summary.rows and back["logm500"].unit == u.dex(u.Msun)
    header = fits.getheader(dest, EXTNAME)
    assert set(PROVENANCE) <= set(header)
    assert header["JOBNAME"] == "pipeline-test" and "xray=xray-v1" in header["MODELS"]
    assert header.comments["JOBHASH"] == PROVENANCE["JOBHASH"]


def test_common_metadata_carries_units_ucds_and_descriptions(catalog):
    schema = pq.read_schema(CatalogLayout(catalog).common_metadata)
    assert schema.field("logm500").metadata[b"unit"] == b"dex(solMass)"
    # which M500 and which h: in the schema and in the mass column's own description
    convention = schema.metadata[b"survey_mass.mass_convention"].decode()
    assert (
        "M500c" in convention
        and "H0 = 70 km/s/Mpc" in convention
        and "no factor of h" in convention
    )
    assert convention in schema.field("logm500").metadata[b"description"].decode()
    assert b"survey_mass.provenance" in schema.metadata
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for field in schema:
            meta = {k.decode(): v.decode() for k, v in field.metadata.items()}
            assert check_ucd(meta["ucd"], check_controlled_vocabulary=True), field.name
            assert meta["description"]
            assert (u.Unit(meta["unit"]) if meta["unit"] else None) == UNITS.get(field.name)


def test_unknown_suffixes_are_refused_with_the_known_ones(catalog, tmp_path):
    with pytest.raises(UserError, match=r"\.fits.*\.parquet"):
        export(catalog, str(tmp_path / "cat.xlsx"))


def test_export_command_writes_the_query(catalog, tmp_path, capsys):
    dest = tmp_path / "few.vot"
    assert main(["export", catalog, str(dest), "--sql", "SELECT * FROM catalog LIMIT 3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(_read(dest, Table)) == 3


@pytest.mark.skipif(shutil.which("stilts") is None, reason="stilts (TOPCAT's STIL) not installed")
@pytest.mark.parametrize("sql", ["SELECT * FROM catalog", EMPTY])
@pytest.mark.parametrize("suffix", [".fits", ".vot"])
def test_topcat_reads_units_ucds_and_coordinates(catalog, tmp_path, suffix, sql):
    dest = export(catalog, str(tmp_path / f"cat{suffix}"), sql)
    out = subprocess.run(
        ["stilts", "tpipe", f"in={dest}", "cmd=meta", "omode=out", "ofmt=csv"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    meta = {row["Name"]: row for row in csv.DictReader(io.StringIO(out))}
    assert list(meta) == SCHEMA.names
    for name in SCHEMA.names:
        assert meta[name]["Units"] == (CDS[UNITS[name].to_string()] if name in UNITS else ""), name
        assert meta[name]["UCD"] == SCHEMA.field(name).metadata[b"ucd"].decode()
    assert meta["ra"]["CoosysSystem"] == meta["dec"]["CoosysSystem"] == "ICRS"
