"""Read-only SQL over a catalog (DuckDB), cone searches that read only the partitions they need,
and export to FITS/VOTable with units for TOPCAT users.

Queries run in a DuckDB connection whose file access is limited to the catalog folder and then
locked, and only SELECT statements are accepted: a query can neither write nor reach other files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from pydantic import ValidationError

from survey_mass.catalog.integrity import require_intact
from survey_mass.catalog.paths import CATALOG, CatalogLayout
from survey_mass.catalog.schema import quarantine_schema
from survey_mass.errors import UserError
from survey_mass.pixel_math import healpix
from survey_mass.spec.footprint import ConeFootprint

#: only SELECT: ``EXPLAIN ANALYZE`` runs the statement it explains (``COPY ... TO`` would write)
READ_ONLY_STATEMENTS = {duckdb.StatementType.SELECT}


def _local_root(url: str) -> Path:
    layout = CatalogLayout(url)
    if layout.fs.protocol not in ("file", "local", ("file", "local")):
        raise UserError(
            f"SQL queries read local catalogs; copy {url} locally first (or use --cone)"
        )
    require_intact(url)
    return Path(layout.root)


def _empty(con: duckdb.DuckDBPyConnection, view: str, schema: pa.Schema) -> None:
    """A view with the table's columns and no rows (an empty catalog is still queryable)."""
    con.register(f"_{view}_empty", schema.empty_table())
    con.execute(f"CREATE VIEW {view} AS SELECT * FROM _{view}_empty")


def connect(url: str) -> duckdb.DuckDBPyConnection:
    """A locked-down DuckDB connection with views ``catalog`` and ``quarantine``."""
    root = _local_root(url)
    con = duckdb.connect(":memory:")
    con.execute(f"SET allowed_directories=['{root}/']")
    con.execute("SET enable_external_access=false")
    layout = CatalogLayout(url)
    tables = {
        "catalog": [p.path for p in layout.partitions(CATALOG)],
        "quarantine": layout.quarantine_files(),
    }
    empty = {"catalog": _catalog_schema(layout), "quarantine": quarantine_schema()}
    for view, files in tables.items():
        if files:
            con.execute(
                f"CREATE VIEW {view} AS SELECT * FROM read_parquet({files!r}, union_by_name=true)"
            )
        else:
            _empty(con, view, empty[view])
    con.execute("SET lock_configuration=true")
    return con


def query(url: str, sql: str) -> pd.DataFrame:
    """Run one read-only SQL statement against the catalog; tables: catalog, quarantine."""
    con = connect(url)
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as err:
        raise UserError(f"SQL does not parse: {err}") from err
    if len(statements) != 1 or statements[0].type not in READ_ONLY_STATEMENTS:
        raise UserError("queries are read-only: give exactly one SELECT statement")
    try:
        return con.sql(sql).df()
    except duckdb.Error as err:
        raise UserError(f"query failed: {err}") from err


@dataclass
class ConeResult:
    rows: pd.DataFrame
    partitions_read: int
    partitions_total: int


def cone_search(url: str, ra: float, dec: float, radius_deg: float) -> ConeResult:
    """Rows within ``radius_deg`` of (ra, dec), reading only the HEALPix partitions the cone touches."""
    try:
        cone = ConeFootprint(ra=ra % 360.0, dec=dec, radius_deg=radius_deg)
    except ValidationError as err:
        problems = "; ".join(f"{e['loc'][0]} {e['msg'].lower()}" for e in err.errors())
        raise UserError(
            f"--cone {ra} {dec} {radius_deg}: not a cone ({problems}); give RA DEC RADIUS in "
            "degrees with -90 <= DEC <= 90 and 0 < RADIUS <= 180"
        ) from None
    layout = CatalogLayout(url)
    fs = layout.fs
    require_intact(url)
    order = json.loads(fs.cat_file(layout.provenance))["order"]
    files = [p.path for p in layout.partitions(CATALOG, order)]
    margin = healpix(order).pixel_resolution.to_value(u.deg)
    wanted = healpix(order).cone_search_lonlat(
        ra * u.deg, dec * u.deg, min(radius_deg + margin, 180.0) * u.deg
    )
    paths = [layout.catalog_file(order, int(p)) for p in np.unique(wanted)]
    paths = [p for p in paths if p in set(files)]
    if paths:
        table = ds.dataset(paths, filesystem=fs, format="parquet").to_table()
        df = table.to_pandas()
    else:
        df = _catalog_schema(layout).empty_table().to_pandas()
    inside = cone.contains(df["ra"].to_numpy(), df["dec"].to_numpy())
    return ConeResult(df[inside].reset_index(drop=True), len(paths), len(files))


def _catalog_schema(layout: CatalogLayout) -> pa.Schema:
    with layout.fs.open(layout.common_metadata, "rb") as fh:
        return pq.read_schema(fh)


def to_table(df: pd.DataFrame, url: str) -> Table:
    """An astropy Table with each column's unit and description from the catalog schema."""
    schema = _catalog_schema(CatalogLayout(url))
    table = Table.from_pandas(df)
    for f in schema:
        if f.name in table.colnames and f.metadata:
            unit = f.metadata.get(b"unit", b"").decode()
            if unit:
                table[f.name].unit = u.Unit(unit)
            table[f.name].description = f.metadata.get(b"description", b"").decode()
    return table


#: FITS has no dex units; its standard log() function says the same thing to TOPCAT and humans
FITS_LOG_UNITS = {"dex(solMass)": "log(solMass)", "dex": "dex"}


def export(url: str, dest: str, sql: str = "SELECT * FROM catalog") -> Path:
    """Write a query's rows as FITS or VOTable (by ``dest``'s suffix), units kept."""
    dest_path = Path(dest)
    formats = {".fits": "fits", ".fit": "fits", ".xml": "votable", ".vot": "votable"}
    fmt = formats.get(dest_path.suffix.lower())
    if fmt is None:
        raise UserError(f"export to {dest!r}: use a .fits or .vot/.xml file name")
    table = to_table(query(url, sql), url)
    if fmt == "votable":
        table.write(dest_path, format="votable", overwrite=True)
        return dest_path
    log_units = {}
    for name in table.colnames:
        unit = table[name].unit
        if unit is not None and unit.to_string() in FITS_LOG_UNITS:
            log_units[name] = FITS_LOG_UNITS[unit.to_string()]
            table[name].unit = None
    hdu = fits.table_to_hdu(table)
    for i, name in enumerate(table.colnames, start=1):
        if name in log_units:
            hdu.header[f"TUNIT{i}"] = log_units[name]
    hdu.writeto(dest_path, overwrite=True)
    return dest_path
