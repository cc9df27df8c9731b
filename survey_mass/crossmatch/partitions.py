"""Read our mass catalogs (HATS-style HEALPix-partitioned Parquet) partition by partition.

Layout: ``ROOT/catalog/Norder=K/Dir=D/Npix=P.parquet``, on any fsspec filesystem (written by
survey_mass.catalog.writer; cone searches live in survey_mass.catalog.query). A crossmatch walks
the partitions one at a time against a reference catalog's margin cache (match.partitioned_match),
so memory holds one partition and the matches, whatever the catalog's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import fsspec
import pandas as pd
import pyarrow.dataset as ds

from survey_mass.crossmatch.match import (
    MarginCache,
    MatchSpec,
    join_pairs,
    margin_order,
    partitioned_match,
)
from survey_mass.errors import UserError

_PARTITION = re.compile(r"Norder=(\d+)/Dir=\d+/Npix=(\d+)\.parquet$")


@dataclass(frozen=True)
class Partition:
    order: int
    pixel: int
    path: str


def list_partitions(catalog: str) -> list[Partition]:
    """Every partition file of the catalog at ``catalog`` (a local path or fsspec URL)."""
    fs, root = fsspec.core.url_to_fs(str(catalog))
    root = root.rstrip("/")
    files = fs.glob(f"{root}/catalog/Norder=*/Dir=*/Npix=*.parquet")
    parts = []
    for path in files:
        found = _PARTITION.search(path)
        if found:
            parts.append(Partition(int(found.group(1)), int(found.group(2)), path))
    if not parts:
        raise UserError(
            f"no mass catalog at {catalog}: expected {catalog}/catalog/Norder=K/Dir=D/Npix=P.parquet "
            "(the output folder of `survey-mass run`)"
        )
    return sorted(parts, key=lambda p: (p.order, p.pixel))


def read_partitions(
    catalog: str, parts: Sequence[Partition], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rows of the given partitions, with units from the Parquet field metadata in attrs."""
    fs, _ = fsspec.core.url_to_fs(str(catalog))
    dataset = ds.dataset([p.path for p in parts], format="parquet", filesystem=fs)
    table = dataset.to_table(columns=list(columns) if columns else None)
    frame = table.to_pandas()
    frame.attrs["units"] = {
        f.name: f.metadata[b"unit"].decode()
        for f in table.schema
        if f.metadata and b"unit" in f.metadata
    }
    return frame


def read_mass_catalog(catalog: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The whole catalog (partitions in (order, pixel) order)."""
    return read_partitions(catalog, list_partitions(catalog), columns)


def iter_partitions(
    catalog: str, columns: Sequence[str] | None = None
) -> Iterator[tuple[int, int, pd.DataFrame]]:
    """``(order, pixel, rows)`` per partition, loading one partition at a time."""
    for part in list_partitions(catalog):
        yield part.order, part.pixel, read_partitions(catalog, [part], columns)


def match_catalog(
    catalog: str,
    reference: pd.DataFrame,
    spec: MatchSpec,
    *,
    columns: Sequence[str] | None = None,
    suffixes: tuple[str, str] = ("_pred", "_ref"),
) -> pd.DataFrame:
    """Crossmatch a mass catalog against a reference table, partition by partition with margins.

    Returns the joined pairs (see match.join_pairs). With ``spec.r500_fraction`` the largest radius
    is found first from the catalog's mass and z columns, so the margins are wide enough.
    """
    max_radius = spec.radius
    if spec.r500_fraction is not None:
        sizes = read_mass_catalog(catalog, [spec.mass_column, "z"])
        if len(sizes):
            max_radius = max(spec.radii(sizes).max(), spec.radius)
    cache = MarginCache(reference, margin_order(max_radius), max_radius)
    joined = []
    for order, pixel, rows in iter_partitions(catalog, columns):
        pairs = partitioned_match(
            [(order, pixel, rows)], reference, spec, cache=cache, max_radius=max_radius
        )
        if len(pairs):  # keep only matched rows: memory stays one partition + the matches
            joined.append(join_pairs(rows, reference, pairs, suffixes))
    if not joined:
        return join_pairs(rows, reference, pairs, suffixes)  # no match: empty, with every column
    return pd.concat(joined, ignore_index=True)
