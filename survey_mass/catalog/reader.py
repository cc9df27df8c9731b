"""Read a mass catalog into pandas, whole or partition by partition, with units in ``attrs``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from survey_mass.catalog.integrity import require_intact
from survey_mass.catalog.paths import CATALOG, CatalogLayout, Partition, resolve
from survey_mass.errors import UserError


def list_partitions(catalog: str) -> list[Partition]:
    """Every partition file of the finished, intact catalog at ``catalog`` (path or fsspec URL):
    give it the resolved folder (``paths.resolve``) when the partitions are read afterwards."""
    layout = CatalogLayout(str(catalog))
    if not layout.fs.exists(layout.metadata) and not layout.partitions(CATALOG):
        raise UserError(
            f"no mass catalog at {catalog}: expected {layout.describe(CATALOG)} "
            "(the output folder of `survey-mass run`)"
        )
    require_intact(str(catalog))
    return layout.partitions(CATALOG)


def read_partitions(
    catalog: str, parts: Sequence[Partition], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rows of the given partitions, with units from the Parquet field metadata in attrs."""
    layout = CatalogLayout(str(catalog))
    if parts:
        dataset = ds.dataset([p.path for p in parts], format="parquet", filesystem=layout.fs)
        table = dataset.to_table(columns=list(columns) if columns else None)
    else:  # an empty catalog: its columns, no rows
        with layout.fs.open(layout.common_metadata, "rb") as fh:
            table = pq.read_schema(fh).empty_table()
        table = table.select(list(columns)) if columns else table
    frame = table.to_pandas()
    frame.attrs["units"] = {
        f.name: f.metadata[b"unit"].decode()
        for f in table.schema
        if f.metadata and b"unit" in f.metadata
    }
    return frame


def read_mass_catalog(catalog: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The whole catalog (partitions in (order, pixel) order) of its current version."""
    catalog = resolve(catalog)
    return read_partitions(catalog, list_partitions(catalog), columns)


def iter_partitions(
    catalog: str, columns: Sequence[str] | None = None
) -> Iterator[tuple[int, int, pd.DataFrame]]:
    """``(order, pixel, rows)`` per partition, loading one partition at a time."""
    catalog = resolve(catalog)
    for part in list_partitions(catalog):
        yield part.order, part.pixel, read_partitions(catalog, [part], columns)


def open_catalog(url: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The mass catalog at ``url`` (local path or fsspec URL) as a DataFrame; units in ``attrs``."""
    return read_mass_catalog(url, columns)
