"""On-disk layout of a job's output, on any fsspec filesystem: the one home of its paths.

A job's output holds catalog versions, ``OUT/v1``, ``OUT/v2``, ... (a new one for each change of
inputs, spec or models; ``catalog.versions``). ``OUT/collection.properties`` names the current
version's catalog (``hats_primary_table_url = v2/masses``): hats and lsdb open ``OUT`` and get it,
and :class:`CatalogLayout` resolves ``OUT`` to it once, so a reader sees one version whole.
``OUT/_lease.json`` names the run writing the output now (host, pid).

Each version ROOT is a HATS collection: the mass catalog is a HATS object catalog that hats, lsdb,
DuckDB and pyarrow read as they read any HATS catalog, with a margin catalog beside it; the
quarantine and the run's bookkeeping sit outside both, where no dataset glob meets them.

    ROOT/collection.properties                        HATS collection: primary table, margin
    ROOT/masses/hats.properties                       the mass catalog's HATS properties
    ROOT/masses/partition_info.csv, skymap.fits       its partitions; its point map
    ROOT/masses/dataset/Norder=K/Dir=D/Npix=P.parquet weighed targets (only non-empty partitions)
    ROOT/masses/dataset/_common_metadata, _metadata   schema (units, provenance); row groups: last
    ROOT/masses_margin/                               margin cache (HATS margin catalog, lsdb)
    ROOT/quarantine/Norder=K/Dir=D/Npix=P.parquet     targets that could not be weighed, with reasons
    ROOT/quarantine/unplaced.parquet                  inputs with no valid position (no shard)
    ROOT/_done/Npix=P.json                            shard P finished: its files' rows, bytes, sha256
    ROOT/_manifest.json                               every shard's files and the totals (integrity)
    ROOT/provenance.json                              job spec, inputs, models, parent version
    ROOT/_identity.json                               what the version is of (written first)
    ROOT/_logs/run-RUN.log                            full tracebacks of a run's failed shards

A shard (a unit of work, a HEALPix pixel) writes one or more partitions inside its pixel, or none
when it holds no target. A shard is done only when its marker exists; the catalog is complete only
when ``masses/dataset/_metadata`` exists.
Every reader finds partitions through :meth:`CatalogLayout.partitions`, never its own glob.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import fsspec

from survey_mass.pixel_math import partition_dir

UNPLACED = -1
#: table names -> folders under the output root
CATALOG, QUARANTINE = "masses/dataset", "quarantine"
MASSES, MARGIN = "masses", "masses_margin"
MARGIN_DATASET = f"{MARGIN}/dataset"
_PARTITION = re.compile(r"Norder=(\d+)/Dir=\d+/Npix=(\d+)\.parquet$")
_PRIMARY = re.compile(r"^hats_primary_table_url\s*=\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Partition:
    """One partition file: its HEALPix order and pixel."""

    order: int
    pixel: int
    path: str


def parse_partition_path(path: str) -> tuple[int, int] | None:
    """(order, pixel) of a ``.../Norder=K/Dir=D/Npix=P.parquet`` path; None for any other file."""
    found = _PARTITION.search(path)
    return (int(found.group(1)), int(found.group(2))) if found else None


def current_version(url: str) -> str | None:
    """The version ``OUT/collection.properties`` names (``v2`` for ``v2/masses``); None when
    ``url`` is itself one version's folder, or holds no finished version yet."""
    fs, root = fsspec.core.url_to_fs(url)
    try:
        text = fs.cat_file(f"{root.rstrip('/')}/collection.properties").decode()
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = _PRIMARY.search(text)
    if found is None or "/" not in found.group(1):
        return None
    return found.group(1).rsplit("/", 1)[0]


def resolve(url: str) -> str:
    """The folder of ``url``'s current version (``url`` itself for one version's folder): a
    reader resolves once and reads that, so a switch to a newer version never mixes the two."""
    return CatalogLayout(str(url)).url


@dataclass(frozen=True)
class CatalogLayout:
    """One catalog version's files. ``CatalogLayout(OUT)`` is OUT's current version (resolved
    once, here); ``output`` is the job's output folder, where the lease lives."""

    url: str
    output: str = ""

    def __post_init__(self):
        if self.output:
            return
        object.__setattr__(self, "output", self.url)
        version = current_version(self.url)
        if version is not None:
            object.__setattr__(self, "url", f"{self.url.rstrip('/')}/{version}")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.url)[0]

    @property
    def root(self) -> str:
        return fsspec.core.url_to_fs(self.url)[1].rstrip("/")

    def _pixel_path(self, table: str, order: int, pixel: int) -> str:
        if pixel == UNPLACED:
            return f"{self.root}/{table}/unplaced.parquet"
        return f"{self.root}/{table}/Norder={order}/Dir={partition_dir(pixel)}/Npix={pixel}.parquet"

    def describe(self, table: str = CATALOG) -> str:
        """The partition path pattern of ``table``, for messages."""
        return f"{self.url.rstrip('/')}/{table}/Norder=K/Dir=D/Npix=P.parquet"

    def catalog_file(self, order: int, pixel: int) -> str:
        return self._pixel_path(CATALOG, order, pixel)

    def margin_file(self, order: int, pixel: int) -> str:
        return self._pixel_path(MARGIN_DATASET, order, pixel)

    def quarantine_file(self, order: int, pixel: int) -> str:
        return self._pixel_path(QUARANTINE, order, pixel)

    def table_dir(self, table: str) -> str:
        return f"{self.root}/{table}"

    @property
    def catalog_dir(self) -> str:
        """The HATS mass catalog (``hats.read_hats`` / ``lsdb.open_catalog`` open it)."""
        return f"{self.root}/{MASSES}"

    @property
    def margin_dir(self) -> str:
        return f"{self.root}/{MARGIN}"

    def url_of(self, name: str) -> str:
        """The URL of a folder of the output."""
        return f"{self.url.rstrip('/')}/{name}"

    def upath(self, name: str = ""):
        """A folder of the output as a UPath for hats and lsdb, with the filesystem's own
        credentials (hats takes a bare s3:// string for a public, anonymous bucket)."""
        from upath import UPath

        return UPath(self.url_of(name) if name else self.url, **self.fs.storage_options)

    def has_table(self, table: str = CATALOG) -> bool:
        return self.fs.isdir(self.table_dir(table))

    def partitions(self, table: str = CATALOG, order: int | None = None) -> list[Partition]:
        """The partition files of ``table`` (at ``order`` if given), sorted by (order, pixel)."""
        norder = "*" if order is None else order
        files = self.fs.glob(f"{self.table_dir(table)}/Norder={norder}/Dir=*/Npix=*.parquet")
        parts = [
            Partition(*parsed, path) for path in files if (parsed := parse_partition_path(path))
        ]
        return sorted(parts, key=lambda p: (p.order, p.pixel))

    def quarantine_files(self) -> list[str]:
        """Every quarantine file, the unplaced inputs' included."""
        return sorted(self.fs.glob(f"{self.table_dir(QUARANTINE)}/**/*.parquet"))

    def done_marker(self, pixel: int) -> str:
        name = "unplaced" if pixel == UNPLACED else f"Npix={pixel}"
        return f"{self.root}/_done/{name}.json"

    @property
    def done_markers(self) -> list[str]:
        return self.fs.glob(f"{self.root}/_done/*.json")

    def relative(self, path: str) -> str:
        """``path`` relative to the catalog root (how markers and the manifest name files)."""
        return path.removeprefix(self.root + "/")

    def absolute(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    @property
    def manifest(self) -> str:
        return f"{self.root}/_manifest.json"

    @property
    def margin_manifest(self) -> str:
        """The margin cache's files (path, rows, bytes, sha256), for readers to check against."""
        return f"{self.root}/{MARGIN}/_manifest.json"

    @property
    def lease(self) -> str:
        return f"{fsspec.core.url_to_fs(self.output)[1].rstrip('/')}/_lease.json"

    @property
    def identity(self) -> str:
        return f"{self.root}/_identity.json"

    def run_log(self, run_id: str) -> str:
        return f"{self.root}/_logs/run-{run_id}.log"

    @property
    def metadata(self) -> str:
        return f"{self.root}/{CATALOG}/_metadata"

    @property
    def common_metadata(self) -> str:
        return f"{self.root}/{CATALOG}/_common_metadata"

    @property
    def margin_metadata(self) -> str:
        """The margin cache's ``_metadata``, written last of its files."""
        return f"{self.root}/{MARGIN_DATASET}/_metadata"

    @property
    def provenance(self) -> str:
        return f"{self.root}/provenance.json"
