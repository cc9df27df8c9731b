"""Resumable catalog writes: each shard's files atomically, then its done marker, metadata last."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from survey_mass.catalog.layout import UNPLACED, CatalogLayout
from survey_mass.catalog.schema import catalog_schema, quarantine_schema
from survey_mass.errors import UserError


def _write_atomic(layout: CatalogLayout, table: pa.Table, path: str) -> None:
    """Write to a temporary name beside ``path``, then rename: readers never see half a file."""
    fs = layout.fs
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with fs.open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
    fs.mv(tmp, path)


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
        _write_atomic(
            layout,
            pa.Table.from_pandas(catalog[schema.names], schema=schema, preserve_index=False),
            layout.catalog_file(order, pixel),
        )
    q_schema = quarantine_schema()
    _write_atomic(
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
    with layout.fs.open(layout.done_marker(pixel), "w") as fh:
        json.dump(marker, fh)
    return marker


def done_shards(layout: CatalogLayout, job_hash: str) -> dict[int, dict]:
    """Markers of finished shards; refuses an output folder written by a different job spec."""
    fs = layout.fs
    markers = {}
    for path in fs.glob(f"{layout.root}/_done/*.json"):
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
    """Write provenance, ``_common_metadata`` and, last, ``_metadata`` (row groups of all shards)."""
    fs = layout.fs
    with fs.open(layout.provenance, "w") as fh:
        json.dump(provenance, fh, indent=2, default=str)
    schema = catalog_schema(instruments).with_metadata(
        {"survey_mass.provenance": json.dumps(provenance, default=str)}
    )
    with fs.open(layout.common_metadata, "wb") as fh:
        pq.write_metadata(schema, fh)
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
    tmp = f"{layout.metadata}.{uuid.uuid4().hex}.tmp"
    with fs.open(tmp, "wb") as fh:
        if collected is None:
            pq.write_metadata(schema, fh)
        else:
            collected.write_metadata_file(fh)
    fs.mv(tmp, layout.metadata)
