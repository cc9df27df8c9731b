"""Resumable catalog writes: each shard's files atomically, then its done marker, metadata last.

Every file is written whole under a temporary name that carries the run's id, then renamed, so a
reader never sees half a file and a run cleans only its own leftovers. A done marker records its
shard's files (rows, bytes, sha256); ``finalize`` gathers them into ``_manifest.json`` before
``_metadata``, so readers can check the catalog against what was written (``catalog.integrity``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from survey_mass.catalog.hats_files import write_hats_files
from survey_mass.catalog.parquet_footer import footer_of, stream_metadata
from survey_mass.catalog.paths import CATALOG, UNPLACED, CatalogLayout, parse_partition_path
from survey_mass.catalog.schema import catalog_schema, quarantine_schema
from survey_mass.errors import UserError
from survey_mass.pixel_math import SPATIAL_INDEX_COLUMN, adaptive_partitions

#: temporary files start with '.', which pyarrow, DuckDB globs and HATS readers skip
TMP_PREFIX = "."
#: 2: ``"margin": true`` where the run built a margin cache, whose own manifest
#: (``CatalogLayout.margin_manifest``) readers then check too
MANIFEST_VERSION = 2


class CatalogWriteError(UserError):
    """A catalog file could not be written (permissions, full disk): names the path."""


def tmp_pattern(layout: CatalogLayout, run_id: str) -> str:
    """Glob of the temporary files of run ``run_id`` anywhere under the catalog."""
    return f"{layout.root}/**/{TMP_PREFIX}*.{run_id}.*.tmp"


def write_bytes(layout: CatalogLayout, path: str, data: bytes, run_id: str) -> None:
    """``data`` to a temporary name beside ``path``, then rename: no one sees half a file."""
    write_chunks(layout, path, [data], run_id)


def write_chunks(layout: CatalogLayout, path: str, chunks: Iterable[bytes], run_id: str) -> None:
    """As ``write_bytes``, for a file made piece by piece (never whole in memory)."""
    fs = layout.fs
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/{TMP_PREFIX}{name}.{run_id}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        fs.makedirs(folder, exist_ok=True)
        with fs.open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        fs.mv(tmp, path)
    except BaseException as err:  # a chunk that cannot be made leaves no temporary file either
        if fs.exists(tmp):
            fs.rm(tmp)
        if not isinstance(err, OSError):
            raise
        raise CatalogWriteError(
            f"cannot write {path}: {err.strerror or err}; check that the output folder is "
            "writable and has space, then re-run the same command"
        ) from err


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _write_table(layout: CatalogLayout, path: str, table: pa.Table, run_id: str) -> dict:
    """Write one Parquet file; returns its record for the done marker."""
    data = parquet_bytes(table)
    write_bytes(layout, path, data, run_id)
    return {
        "path": layout.relative(path),
        "rows": table.num_rows,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def write_shard(
    layout: CatalogLayout,
    order: int,
    pixel: int,
    catalog: pd.DataFrame,
    quarantine: pd.DataFrame,
    instruments: list[str],
    job_hash: str,
    run_id: str = "run",
    max_rows: int = 100_000,
    extra: dict | None = None,
) -> dict:
    """Write one shard's catalog partitions and quarantine part, then its done marker (with
    ``extra`` fields: what the shard's inputs were and how much of it was weighed anew).

    The shard's rows go to partitions inside its pixel, split until each holds at most
    ``max_rows`` rows; a shard without targets writes no file, only its marker.
    """
    files = []
    if pixel != UNPLACED and len(catalog):
        schema = catalog_schema(instruments)
        table = pa.Table.from_pandas(catalog[schema.names], schema=schema, preserve_index=False)
        index = catalog[SPATIAL_INDEX_COLUMN].to_numpy()
        for (k, p), rows in sorted(adaptive_partitions(index, order, pixel, max_rows).items()):
            part = table.take(pa.array(rows))
            files.append(_write_table(layout, layout.catalog_file(k, p), part, run_id))
    if len(quarantine):
        q_schema = quarantine_schema()
        table = pa.Table.from_pandas(
            quarantine[q_schema.names], schema=q_schema, preserve_index=False
        )
        files.append(_write_table(layout, layout.quarantine_file(order, pixel), table, run_id))
    marker = {
        "pixel": pixel,
        "order": order,
        "rows": int(len(catalog)),
        "quarantined": int(len(quarantine)),
        "job_hash": job_hash,
        "files": files,
        **(extra or {}),
    }
    write_bytes(layout, layout.done_marker(pixel), json.dumps(marker).encode(), run_id)
    return marker


def _marker_pixel(path: str) -> int | None:
    """The pixel a marker file is named for; None for a name no run writes (a copy, an OS's
    ``._`` file), which is no marker."""
    name = path.rsplit("/", 1)[-1].removesuffix(".json")
    if name == "unplaced":
        return UNPLACED
    digits = name.removeprefix("Npix=")
    return int(digits) if name.startswith("Npix=") and digits.isdigit() else None


def iter_markers(layout: CatalogLayout):
    """Every readable done marker, one at a time, in pixel order (unreadable ones are left out:
    their shard is not done)."""
    fs = layout.fs
    named = [(p, path) for path in layout.done_markers if (p := _marker_pixel(path)) is not None]
    for _, path in sorted(named):
        try:
            marker = json.loads(fs.cat_file(path))
            int(marker["pixel"])
        except (ValueError, KeyError, TypeError):
            continue
        yield marker


def read_marker(layout: CatalogLayout, pixel: int) -> dict | None:
    """One shard's done marker, or None when it has none (or an unreadable one)."""
    try:
        marker = json.loads(layout.fs.cat_file(layout.done_marker(pixel)))
    except (OSError, ValueError):  # missing (some stores say so with PermissionError) or damaged
        return None
    return marker if isinstance(marker, dict) else None


def read_markers(layout: CatalogLayout) -> dict[int, dict]:
    """Every done marker by pixel (unreadable ones are left out: their shard is not done)."""
    return {int(m["pixel"]): m for m in iter_markers(layout)}


@dataclass
class ShardTally:
    """Counts over done markers: what a run keeps of its shards instead of the markers."""

    rows: int = 0
    quarantined: int = 0
    weighed: int = 0
    carried: int = 0

    def add(self, marker: dict) -> None:
        self.rows += marker["rows"]
        self.quarantined += marker["quarantined"]
        self.weighed += marker.get("weighed", marker["rows"])
        self.carried += bool(marker.get("carried"))


def done_shards(layout: CatalogLayout, job_hash: str) -> dict[int, dict]:
    """Markers of finished shards; refuses an output folder written by a different job spec."""
    markers = read_markers(layout)
    if any(m.get("job_hash") != job_hash for m in markers.values()):
        raise UserError(
            f"{layout.url} holds shards of a different job (spec or models changed); "
            "choose another output.url, or delete that folder to start afresh"
        )
    return markers


def is_complete(layout: CatalogLayout) -> bool:
    return layout.fs.exists(layout.metadata)


def _manifest_chunks(layout: CatalogLayout, order: int, tally: ShardTally, margin: bool):
    """``_manifest.json`` as it is written, marker by marker (the totals after the shards)."""
    head = json.dumps({"manifest_version": MANIFEST_VERSION, "order": order, "margin": margin})
    yield (head[:-1] + ', "shards": {').encode()
    for i, marker in enumerate(iter_markers(layout)):
        pixel, files = json.dumps(str(marker["pixel"])), json.dumps(marker["files"])
        yield f"{', ' if i else ''}\n{pixel}: {files}".encode()
    yield f'}}, "rows": {tally.rows}, "quarantined": {tally.quarantined}}}\n'.encode()


def write_manifest(
    layout: CatalogLayout, order: int, tally: ShardTally, run_id: str, margin: bool = False
):
    """``_manifest.json``: every shard's files and the totals, for readers to check against;
    ``margin``: whether a margin cache (with its own manifest) follows."""
    chunks = _manifest_chunks(layout, order, tally, margin)
    write_chunks(layout, layout.manifest, chunks, run_id)


def catalog_records(layout: CatalogLayout) -> tuple[list[dict], ShardTally, set[int]]:
    """The mass catalog's partition files of every done shard, in (order, pixel) order, the
    shards' tally and their pixels; the markers are read one at a time."""
    records, tally, pixels = [], ShardTally(), set()
    for marker in iter_markers(layout):
        tally.add(marker)
        pixels.add(int(marker["pixel"]))
        records += [f for f in marker["files"] if f["path"].startswith(CATALOG)]
    return sorted(records, key=lambda f: parse_partition_path(f["path"])), tally, pixels


class _Footers:
    """(path relative to ``table``, Parquet footer) of each record's file, read when iterated:
    ``stream_metadata`` walks it twice and holds one footer at a time."""

    def __init__(self, layout: CatalogLayout, records: list[dict], table: str):
        self.layout, self.records, self.table = layout, records, table

    def __iter__(self):
        for record in self.records:
            with self.layout.fs.open(self.layout.absolute(record["path"]), "rb") as fh:
                fh.seek(-8, 2)
                tail = fh.read(8)
                length = int.from_bytes(tail[:4], "little")
                fh.seek(-8 - length, 2)
                footer = footer_of(fh.read(length) + tail)
            yield record["path"].removeprefix(self.table + "/"), footer


def write_collected_metadata(
    layout: CatalogLayout, path: str, records: list[dict], schema, run_id: str, table=CATALOG
) -> None:
    """``_metadata`` at ``path``: the row groups of every partition file of ``table`` (records'
    paths are relative to the catalog root), paths relative to it. Streamed footer by footer
    (``catalog.parquet_footer``): pyarrow's in-memory collection grew the driver by ~22 KB per
    partition file; the bytes are the same."""
    if not records:
        sink = pa.BufferOutputStream()
        pq.write_metadata(schema, sink)
        write_bytes(layout, path, sink.getvalue().to_pybytes(), run_id)
        return
    write_chunks(layout, path, stream_metadata(_Footers(layout, records, table)), run_id)


def finalize(
    layout: CatalogLayout,
    order: int,
    shards: set[int],
    instruments: list[str],
    provenance: dict,
    run_id: str = "run",
    stale_runs: tuple[str, ...] = (),
    margin: Callable[[], None] | None = None,
) -> ShardTally:
    """Write provenance, the HATS files, ``_manifest.json``, the margin and, last, ``_metadata``,
    from the done markers on disk, which must be those of ``shards`` (the pixels the run counts as
    done: else it refuses); returns their tally.

    Temporary files of this run and of ``stale_runs`` (runs whose lease this one took over) are
    removed first; a concurrent run's are never touched. ``margin()`` builds the margin cache
    once the catalog's partitions and properties are in place (a catalog of no rows has none).

    Departure from hats: ``_metadata`` and ``_common_metadata`` are written here rather than by
    ``hats.io.write_parquet_metadata``, so that ``_metadata`` is written atomically and last
    (it marks the catalog complete) from the manifest's file list, and ``_common_metadata``
    carries the job's provenance beside the units.
    """
    fs = layout.fs
    for run in (run_id, *stale_runs):
        for stale in fs.glob(tmp_pattern(layout, run)):
            fs.rm(stale)
    text = json.dumps(provenance, indent=2, default=str)
    write_bytes(layout, layout.provenance, text.encode(), run_id)
    schema = catalog_schema(instruments)
    schema = schema.with_metadata({**schema.metadata, b"survey_mass.provenance": text.encode()})
    sink = pa.BufferOutputStream()
    pq.write_metadata(schema, sink)
    write_bytes(layout, layout.common_metadata, sink.getvalue().to_pybytes(), run_id)
    records, tally, on_disk = catalog_records(layout)
    if on_disk != shards:
        missing, extra = sorted(shards - on_disk), sorted(on_disk - shards)
        raise CatalogWriteError(
            f"{layout.url} holds done markers of {len(on_disk)} shards, the run finished "
            f"{len(shards)} (missing {missing[:5]}, unexpected {extra[:5]}): a marker was "
            "removed, damaged or added while it ran; re-run the same command"
        )
    write_hats_files(
        layout, records, provenance, lambda path, data: write_bytes(layout, path, data, run_id)
    )
    with_margin = margin is not None and tally.rows > 0
    write_manifest(layout, order, tally, run_id, with_margin)
    if with_margin:
        margin()
    write_collected_metadata(layout, layout.metadata, records, schema, run_id)
    return tally
