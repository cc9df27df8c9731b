"""The margin cache beside the mass catalog: a HATS margin catalog, built partition by partition.

For each partition it holds the rows of neighbouring partitions within ``margin_arcsec`` of its
border, so that lsdb crossmatches against the catalog are exact at partition borders for any
radius up to the margin. It is derived data: rebuilt from the partitions at every finalize.

It is the catalog hats-import's margin pipeline makes: every row of the margin-order pixels (the
coarsest whose pixels are at least ``margin_arcsec`` wide, and finer than the deepest partition)
bordering a partition, or bordering a pixel the catalog does not cover (hats' negative tree: a
crossmatch from outside the footprint still finds the rows just inside). The margin is at least
as wide as asked, except where adaptive partitioning went so deep that finer pixels are
narrower: ``hats_margin_threshold`` states the width it has.

Departure from hats-import: its pipeline keeps a table of every (partition, margin pixel) pair
and a future per partition in the driver, which grew the driver's memory by ~80 KB a partition
(issue 19). Here each margin partition is one task of the same bounded window as the shards, and
the driver holds the pixel list and a row count per margin file.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from survey_mass.catalog.paths import MARGIN, MARGIN_DATASET, MASSES, CatalogLayout
from survey_mass.catalog.writer import parquet_bytes, write_bytes, write_collected_metadata
from survey_mass.errors import UserError
from survey_mass.pixel_math import SPATIAL_INDEX_COLUMN, SPATIAL_INDEX_ORDER, pixels_at_order


@dataclass(frozen=True)
class Partitions:
    """The primary catalog's partitions: pixel numbers per order, sorted (one task input)."""

    by_order: dict[int, np.ndarray]

    def containing(self, pixels: np.ndarray, order: int) -> list[tuple[int, int, np.ndarray]]:
        """(partition order, partition pixel, the ``pixels`` at ``order`` inside it)."""
        found = []
        for o, members in self.by_order.items():
            parents = pixels >> (2 * (order - o))
            inside = np.isin(parents, members)
            for parent in np.unique(parents[inside]):
                found.append((o, int(parent), pixels[inside & (parents == parent)]))
        return found


def margin_order(highest: int, margin_arcsec: float) -> int:
    """The margin pixels' order: wide enough for the margin, finer than every partition."""
    from hats.pixel_math import healpix_shim as hp

    return int(max(hp.margin2order(margin_thr_arcmin=margin_arcsec / 60.0), highest + 1))


def margin_rows(layout: CatalogLayout, partitions: Partitions, order: int, pixel: int, m: int):
    """The rows of the margin of pixel ``pixel`` at ``order``: the catalog's rows in the
    order-``m`` pixels bordering it, sorted by the spatial index (None when there are none)."""
    from hats.pixel_math import get_margin

    bordering = np.asarray(get_margin(order, pixel, m - order), dtype=np.int64)
    tables = []
    for o, p, wanted in partitions.containing(bordering, m):
        with layout.fs.open(layout.catalog_file(o, p), "rb") as fh:
            table = pq.read_table(fh)
        index = table.column(SPATIAL_INDEX_COLUMN).to_numpy()
        keep = np.isin(pixels_at_order(index, m), wanted)
        if keep.any():
            tables.append(table.filter(pa.array(keep)))
    if not tables:
        return None
    rows = pa.concat_tables(tables)
    return rows.take(pc.sort_indices(rows, [(SPATIAL_INDEX_COLUMN, "ascending")]))


def write_margin_partition(
    layout: CatalogLayout, partitions: Partitions, order: int, pixel: int, m: int, run_id: str
) -> dict | None:
    """One margin file, written atomically; its record (path, rows, bytes, sha256) or None."""
    rows = margin_rows(layout, partitions, order, pixel, m)
    if rows is None:
        return None
    path = layout.margin_file(order, pixel)
    data = parquet_bytes(rows)
    write_bytes(layout, path, data, run_id)
    return {
        "path": layout.relative(path),
        "rows": rows.num_rows,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def build_margin(layout: CatalogLayout, client, margin_arcsec: float, run_id: str) -> None:
    """Rebuild ``masses_margin`` from the catalog's partitions on the job's cluster."""
    import hats

    from survey_mass.runner.window import run_window

    primary = hats.read_hats(layout.upath(MASSES))
    pixels = primary.get_healpix_pixels()
    m = margin_order(max(p.order for p in pixels), margin_arcsec)
    partitions = Partitions(
        {
            o: np.array(sorted(p.pixel for p in pixels if p.order == o), dtype=np.int64)
            for o in sorted({p.order for p in pixels})
        }
    )
    created = _creation_date(layout)
    if layout.fs.exists(layout.margin_dir):
        layout.fs.rm(layout.margin_dir, recursive=True)
    partitions_f = client.submit(_same, partitions, pure=False)  # travels once, as a task
    records: list[dict] = []  # one small record per margin file: what _metadata lists
    errors = run_window(
        client,
        lambda px: client.submit(
            write_margin_partition,
            layout,
            partitions_f,
            px.order,
            px.pixel,
            m,
            run_id,
            key=f"margin-{px.order}-{px.pixel}-{run_id}",
            pure=False,
        ),
        [*pixels, *primary.generate_negative_tree_pixels()],
        lambda record: record and records.append(record),
    )
    if errors:
        key, err = errors[0]
        raise UserError(
            f"{len(errors)} margin partition(s) failed ({key}: {type(err).__name__}: {err}); "
            "re-run the same command to rebuild the margin"
        )
    records.sort(key=lambda r: r["path"])
    _write_margin_files(layout, primary, records, m, margin_arcsec, created, run_id)


def _write_margin_files(layout, primary, records, m, margin_arcsec, created, run_id) -> None:
    """properties, partition_info.csv, ``_manifest.json``, ``_common_metadata`` and, last,
    ``_metadata``."""
    from pathlib import Path

    from hats.catalog import PartitionInfo, TableProperties
    from hats.pixel_math import healpix_shim as hp
    from hats.pixel_math.healpix_pixel import HealpixPixel

    from survey_mass import __version__
    from survey_mass.catalog.paths import parse_partition_path

    info = PartitionInfo.from_healpix(
        [HealpixPixel(*parse_partition_path(r["path"])) for r in records]
    )
    fields = TableProperties.new_provenance_dict(builder=f"survey-mass v{__version__}")
    fields["hats_estsize"] = int(sum(r["bytes"] for r in records) / 1024)
    fields["hats_creation_date"] = created or fields["hats_creation_date"]
    properties = TableProperties(
        catalog_name=MARGIN,
        catalog_type="margin",
        total_rows=sum(r["rows"] for r in records),
        ra_column="ra",
        dec_column="dec",
        healpix_column=SPATIAL_INDEX_COLUMN,
        healpix_order=SPATIAL_INDEX_ORDER,
        primary_catalog=str(layout.upath(MASSES)),
        margin_threshold=float(hp.order2mindist(m) * 60.0),  # [arcsec]: what its pixels give
        hats_order=info.get_highest_order() if records else 0,
        moc_sky_fraction=float(f"{info.calculate_fractional_coverage():.5f}") if records else 0.0,
        npix_suffix=".parquet",
        **fields,
    )
    schema = primary.schema
    with tempfile.TemporaryDirectory() as tmp:
        properties.to_properties_file(tmp)
        (Path(tmp) / "partition_info.csv").write_text(info.as_dataframe().to_csv(index=False))
        for name in ("partition_info.csv", "hats.properties", "properties"):
            write_bytes(
                layout, f"{layout.margin_dir}/{name}", (Path(tmp) / name).read_bytes(), run_id
            )
    manifest = json.dumps({"files": records}, indent=1).encode()
    write_bytes(layout, layout.margin_manifest, manifest, run_id)
    sink = pa.BufferOutputStream()
    pq.write_metadata(schema, sink)
    dataset = f"{layout.root}/{MARGIN_DATASET}"
    write_bytes(layout, f"{dataset}/_common_metadata", sink.getvalue().to_pybytes(), run_id)
    write_collected_metadata(
        layout, layout.margin_metadata, records, schema, run_id, MARGIN_DATASET
    )


def _same(value):
    return value


def _creation_date(layout: CatalogLayout) -> str | None:
    from hats.catalog import TableProperties

    try:
        return TableProperties.read_from_dir(layout.upath(MARGIN)).hats_creation_date
    except (FileNotFoundError, ValueError):
        return None
