"""Integrity of a finished catalog: what is on disk against what the run wrote.

The cheap check (every reader, before it answers) lists the catalog once and compares the file
set, byte sizes and row counts with ``_manifest.json``, the done markers and ``_metadata``. The
deep check (``survey-mass verify --deep``) also hashes every file and reads its schema.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from survey_mass.catalog.paths import (
    CATALOG,
    MARGIN_DATASET,
    QUARANTINE,
    CatalogLayout,
    parse_partition_path,
)
from survey_mass.catalog.writer import read_markers
from survey_mass.errors import UserError

#: how a problem only the deep check finds ends
SHA256_FAILS = "fails its sha256 check"


class DamagedCatalogError(UserError):
    """A catalog whose files differ from what its run wrote; readers refuse to answer from it."""


@dataclass(frozen=True)
class Problem:
    pixel: int | None  # the shard it concerns, None for catalog-wide files
    what: str


@dataclass
class IntegrityReport:
    url: str
    problems: list[Problem] = field(default_factory=list)
    shards: int = 0
    rows: int = 0
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def damaged_shards(self) -> list[int]:
        return sorted({p.pixel for p in self.problems if p.pixel is not None})

    def summary(self) -> str:
        """One line: what is damaged and how to repair it."""
        if self.ok:
            return f"{self.url}: intact ({self.shards} shards, {self.rows} rows)"
        shards = self.damaged_shards
        named = ", ".join(f"Npix={p}" for p in shards[:8]) + (" ..." if len(shards) > 8 else "")
        first = self.problems[0].what
        where = (
            f"{len(shards)} damaged shard(s) ({named}); first problem: {first}" if shards else first
        )
        # only the deep check hashes files, so only a deep re-run sees what it found
        deep = any(p.what.endswith(SHA256_FAILS) for p in self.problems)
        rerun = "survey-mass run JOB.toml --deep" if deep else "survey-mass run JOB.toml"
        return (
            f"{self.url} is damaged: {where}. "
            f"Re-run its job ({rerun}) to recompute what is damaged; "
            f"details: survey-mass verify {self.url}{' --deep' if deep else ''}"
        )


def _listing(layout: CatalogLayout, tables=(CATALOG, QUARANTINE)) -> dict[str, int]:
    """Relative path -> size of every partition file (one listing per table)."""
    sizes = {}
    for table in tables:
        if not layout.fs.isdir(layout.table_dir(table)):
            continue
        for path, info in layout.fs.find(layout.table_dir(table), detail=True).items():
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".parquet") and not name.startswith("."):
                sizes[layout.relative(path)] = int(info["size"])
    return sizes


def _load_json(layout: CatalogLayout, path: str, report: IntegrityReport) -> dict | None:
    try:
        return json.loads(layout.fs.cat_file(path))
    except FileNotFoundError:
        report.problems.append(Problem(None, f"{layout.relative(path)} is missing"))
    except ValueError:
        report.problems.append(Problem(None, f"{layout.relative(path)} is not valid JSON"))
    return None


def _metadata_rows(
    layout: CatalogLayout, report: IntegrityReport, path: str | None = None
) -> dict[str, int]:
    """Relative file path -> rows, from the row groups of ``_metadata`` (``path``: another's)."""
    path = path or layout.metadata
    try:
        with layout.fs.open(path, "rb") as fh:
            meta = pq.read_metadata(fh)
    except (OSError, ValueError) as err:
        report.problems.append(Problem(None, f"{layout.relative(path)} is unreadable ({err})"))
        return {}
    rows: dict[str, int] = {}
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        path = group.column(0).file_path if group.num_columns else ""
        rows[path] = rows.get(path, 0) + group.num_rows
    return rows


def _check_file(layout, pixel, record, sizes, meta_rows, deep, report, table=CATALOG) -> None:
    path = record["path"]
    report.files_checked += 1
    if path not in sizes:
        report.problems.append(Problem(pixel, f"{path} is missing"))
        return
    if sizes[path] != record["bytes"]:
        report.problems.append(
            Problem(pixel, f"{path} has {sizes[path]} bytes, {record['bytes']} were written")
        )
        return
    in_metadata = path.removeprefix(table + "/")
    if path.startswith(table + "/") and meta_rows.get(in_metadata, 0) != record["rows"]:
        report.problems.append(
            Problem(
                pixel,
                f"_metadata counts {meta_rows.get(in_metadata, 0)} rows of {path}, "
                f"{record['rows']} were written",
            )
        )
    if deep and not _same_bytes(layout, record):
        report.problems.append(Problem(pixel, f"{path} {SHA256_FAILS}"))


def _same_bytes(layout: CatalogLayout, record: dict) -> bool:
    """Whether the file of a marker's or manifest's ``record`` hashes to its recorded sha256."""
    data = layout.fs.cat_file(layout.absolute(record["path"]))
    return hashlib.sha256(data).hexdigest() == record["sha256"]


def verify(url: str, deep: bool = False) -> IntegrityReport:
    """Check a finished catalog against its manifest, markers and ``_metadata``."""
    layout = CatalogLayout(url)
    report = IntegrityReport(url)
    if not layout.fs.exists(layout.metadata):
        report.problems.append(
            Problem(None, "no _metadata: the catalog is not finished (run or resume its job)")
        )
        return report
    manifest = _load_json(layout, layout.manifest, report)
    if manifest is None:
        return report
    markers, sizes = read_markers(layout), _listing(layout)
    meta_rows = _metadata_rows(layout, report)
    expected = set()
    for key, records in manifest["shards"].items():
        pixel = int(key)
        if markers.get(pixel, {}).get("files") != records:
            report.problems.append(
                Problem(pixel, f"done marker of Npix={pixel} is missing or differs")
            )
        for record in records:
            expected.add(record["path"])
            _check_file(layout, pixel, record, sizes, meta_rows, deep, report)
    for path in sorted(set(sizes) - expected):
        parsed = parse_partition_path(path)
        report.problems.append(
            Problem(parsed[1] if parsed else None, f"{path} is not in the manifest")
        )
    if sum(meta_rows.values()) != manifest["rows"]:
        report.problems.append(
            Problem(
                None,
                f"_metadata counts {sum(meta_rows.values())} rows, the manifest {manifest['rows']}",
            )
        )
    if manifest.get("margin"):  # a margin cache was built (absent from version-1 manifests)
        _check_margin(layout, deep, report)
    report.shards, report.rows = len(manifest["shards"]), manifest["rows"]
    return report


def _check_margin(layout: CatalogLayout, deep: bool, report: IntegrityReport) -> None:
    """The margin cache against its manifest and ``_metadata`` (catalog-wide problems: a re-run
    rebuilds the whole margin from the catalog's partitions)."""
    manifest = _load_json(layout, layout.margin_manifest, report)
    if manifest is None:
        return
    sizes = _listing(layout, (MARGIN_DATASET,))
    meta_rows = _metadata_rows(layout, report, layout.margin_metadata)
    for record in manifest["files"]:
        _check_file(layout, None, record, sizes, meta_rows, deep, report, MARGIN_DATASET)
    for path in sorted(set(sizes) - {r["path"] for r in manifest["files"]}):
        report.problems.append(Problem(None, f"{path} is not in the margin's manifest"))


def require_intact(url: str) -> IntegrityReport:
    """The cheap check, raising DamagedCatalogError (one line, with the fix) if it fails."""
    report = verify(url)
    if not report.ok:
        raise DamagedCatalogError(report.summary())
    return report


def damaged_markers(
    layout: CatalogLayout, markers: dict[int, dict], deep: bool = False
) -> list[int]:
    """Shards whose marker's files are missing or of another size (checked before resuming);
    ``deep``: or whose bytes fail the marker's sha256."""
    sizes = _listing(layout)

    def damaged(marker: dict) -> bool:
        if "files" not in marker:
            return True
        return any(
            sizes.get(f["path"]) != f["bytes"] or (deep and not _same_bytes(layout, f))
            for f in marker["files"]
        )

    return sorted(pixel for pixel, marker in markers.items() if damaged(marker))
