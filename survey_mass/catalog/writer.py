"""Resumable catalog writes: each shard's files atomically, then its done marker, metadata last."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from survey_mass.catalog.paths import UNPLACED, CatalogLayout
from survey_mass.catalog.schema import catalog_schema, quarantine_schema
from survey_mass.errors import UserError

#: temporary files start with '.', which pyarrow, DuckDB globs and HATS readers skip
TMP_PREFIX = "."


def _write_atomic(layout: CatalogLayout, path: str, write) -> None:
    """``write(fh)`` to a temporary name beside ``path``, then rename: no one sees half a file."""
    fs = layout.fs
    folder, name = path.rsplit("/", 1)
    fs.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/{TMP_PREFIX}{name}.{uuid.uuid4().hex}.tmp"  # hidden from dataset readers
    with fs.open(tmp, "wb") as fh:
        write(fh)
    fs.mv(tmp, path)


def _write_parquet(layout: CatalogLayout, table: pa.Table, path: str) -> None:
    _write_atomic(layout, path, lambda fh: pq.write_table(table, fh, compression="zstd"))


def write_shard(
    layout: CatalogLayout,
    order: int,
    pixel: int,
    catalog: pd.DataFrame,
    quarantine: pd.DataFrame,
    instruments: list[str],
    job_hash: str,
) -> dict:
    """Write one shard's catalog and quarantine parts, then its done marker; returns the counts."""
    if pixel != UNPLACED:
        schema = catalog_schema(instruments)
        _write_parquet(
            layout,
            pa.Table.from_pandas(catalog[schema.names], schema=schema, preserve_index=False),
            layout.catalog_file(order, pixel),
        )
    q_schema = quarantine_schema()
    _write_parquet(
        layout,
        pa.Table.from_pandas(quarantine[q_schema.names], schema=q_schema, preserve_index=False),
        layout.quarantine_file(order, pixel),
    )
    marker = {
        "pixel": pixel,
        "order": order,
        "rows": int(len(catalog)),
        "quarantined": int(len(quarantine)),
        "job_hash": job_hash,
    }
    _write_atomic(
        layout, layout.done_marker(pixel), lambda fh: fh.write(json.dumps(marker).encode())
    )
    return marker


def done_shards(layout: CatalogLayout, job_hash: str) -> dict[int, dict]:
    """Markers of finished shards; refuses an output folder written by a different job spec."""
    fs = layout.fs
    markers = {}
    for path in layout.done_markers:
        with fs.open(path) as fh:
            marker = json.load(fh)
        if marker["job_hash"] != job_hash:
            raise UserError(
                f"{layout.url} holds shards of a different job (spec or models changed); "
                "choose another output.url, or delete that folder to start afresh"
            )
        markers[int(marker["pixel"])] = marker
    return markers


def is_complete(layout: CatalogLayout) -> bool:
    return layout.fs.exists(layout.metadata)


def finalize(
    layout: CatalogLayout, order: int, pixels: list[int], instruments: list[str], provenance: dict
) -> None:
    """Write provenance, ``_common_metadata`` and, last, ``_metadata`` (row groups of all shards).

    Temporary files left by writers that were killed are removed first.
    """
    fs = layout.fs
    for stale in fs.glob(f"{layout.root}/**/{TMP_PREFIX}*.tmp"):
        fs.rm(stale)
    text = json.dumps(provenance, indent=2, default=str)
    _write_atomic(layout, layout.provenance, lambda fh: fh.write(text.encode()))
    schema = catalog_schema(instruments).with_metadata({"survey_mass.provenance": text})
    _write_atomic(layout, layout.common_metadata, lambda fh: pq.write_metadata(schema, fh))
    collected = None
    for pixel in sorted(p for p in pixels if p != UNPLACED):
        path = layout.catalog_file(order, pixel)
        with fs.open(path, "rb") as fh:
            meta = pq.read_metadata(fh)
        meta.set_file_path(path.removeprefix(layout.root + "/"))
        if collected is None:
            collected = meta
        else:
            collected.append_row_groups(meta)
    if collected is None:
        _write_atomic(layout, layout.metadata, lambda fh: pq.write_metadata(schema, fh))
    else:
        _write_atomic(layout, layout.metadata, collected.write_metadata_file)
