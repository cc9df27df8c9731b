"""Read-only SQL over a catalog (DuckDB) and cone searches that read only the partitions they need
(exports: ``catalog.export``).

Queries run in a DuckDB connection whose file access is limited to the catalog folder and then
locked, and only SELECT statements are accepted: a query can neither write nor reach other files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from astropy import units as u
from pydantic import ValidationError

from survey_mass.catalog.integrity import require_intact
from survey_mass.catalog.paths import CATALOG, CatalogLayout, resolve
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
    url = resolve(url)
    root = _local_root(url)
    con = duckdb.connect(":memory:")
    con.execute(f"SET allowed_directories=['{root}/']")
    con.execute("SET enable_external_access=false")
    layout = CatalogLayout(url)
    tables = {
        "catalog": [p.path for p in layout.partitions(CATALOG)],
        "quarantine": layout.quarantine_files(),
    }
    empty = {"catalog": catalog_schema_of(layout), "quarantine": quarantine_schema()}
    for view, files in tables.items():
        if files:
            con.execute(
                f"CREATE VIEW {view} AS SELECT * FROM read_parquet({files!r}, union_by_name=true, hive_partitioning=false)"
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
    url = resolve(url)
    layout = CatalogLayout(url)
    fs = layout.fs
    require_intact(url)
    parts = layout.partitions(CATALOG)
    paths = []
    for order in sorted({p.order for p in parts}):  # partitions may sit at several orders
        # every pixel the cone overlaps, even partly (astropy-healpix's cone search is inclusive)
        wanted = set(
            healpix(order).cone_search_lonlat(ra * u.deg, dec * u.deg, radius_deg * u.deg).tolist()
        )
        paths += [p.path for p in parts if p.order == order and p.pixel in wanted]
    if paths:
        table = ds.dataset(paths, filesystem=fs, format="parquet").to_table()
        df = table.to_pandas()
    else:
        df = catalog_schema_of(layout).empty_table().to_pandas()
    inside = cone.contains(df["ra"].to_numpy(), df["dec"].to_numpy())
    return ConeResult(df[inside].reset_index(drop=True), len(paths), len(parts))


def catalog_schema_of(layout: CatalogLayout) -> pa.Schema:
    """The mass catalog's schema (units, descriptions, UCDs) from ``_common_metadata``."""
    with layout.fs.open(layout.common_metadata, "rb") as fh:
        return pq.read_schema(fh)
