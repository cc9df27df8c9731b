"""On-disk layout of a catalog (HATS-style), on any fsspec filesystem.

    ROOT/catalog/Norder=K/Dir=D/Npix=P.parquet     weighed targets of shard P
    ROOT/quarantine/Norder=K/Dir=D/Npix=P.parquet  targets that could not be weighed, with reasons
    ROOT/quarantine/unplaced.parquet               inputs with no valid position (no shard)
    ROOT/_done/Npix=P.json                         shard P finished (row counts), written after both
    ROOT/_common_metadata, ROOT/_metadata          schema + provenance; row groups; written last
    ROOT/provenance.json                           job spec, code version, model hashes

A shard is done only when its marker exists; a catalog is complete only when ``_metadata`` exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import fsspec

UNPLACED = -1


@dataclass(frozen=True)
class CatalogLayout:
    url: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.url)[0]

    @property
    def root(self) -> str:
        return fsspec.core.url_to_fs(self.url)[1].rstrip("/")

    def _pixel_path(self, table: str, order: int, pixel: int) -> str:
        if pixel == UNPLACED:
            return f"{self.root}/{table}/unplaced.parquet"
        return (
            f"{self.root}/{table}/Norder={order}/Dir={pixel // 10000 * 10000}/Npix={pixel}.parquet"
        )

    def catalog_file(self, order: int, pixel: int) -> str:
        return self._pixel_path("catalog", order, pixel)

    def quarantine_file(self, order: int, pixel: int) -> str:
        return self._pixel_path("quarantine", order, pixel)

    def done_marker(self, pixel: int) -> str:
        name = "unplaced" if pixel == UNPLACED else f"Npix={pixel}"
        return f"{self.root}/_done/{name}.json"

    @property
    def metadata(self) -> str:
        return f"{self.root}/_metadata"

    @property
    def common_metadata(self) -> str:
        return f"{self.root}/_common_metadata"

    @property
    def provenance(self) -> str:
        return f"{self.root}/provenance.json"
