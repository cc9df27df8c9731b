"""The HATS files of a finished mass catalog, written with the hats library's own models.

``masses/hats.properties`` (TableProperties), ``masses/partition_info.csv`` (PartitionInfo),
``masses/skymap.fits`` (the point map, hats' write_skymap) and ``collection.properties``
(CollectionProperties, naming the margin catalog), so that hats, lsdb and their validation read
the output as they read a catalog hats-import wrote.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from survey_mass import __version__
from survey_mass.catalog.paths import MARGIN, MASSES, CatalogLayout, parse_partition_path
from survey_mass.pixel_math import SPATIAL_INDEX_COLUMN, SPATIAL_INDEX_ORDER, pixels_at_order

#: the point map's order: at least the partitions' and fine enough to show a cone's shape
SKYMAP_ORDER = (6, 9)


def _existing_date(layout: CatalogLayout) -> str | None:
    """The creation date of an earlier finalize, so that re-finalizing changes no byte."""
    from hats.catalog import TableProperties

    try:
        return TableProperties.read_from_dir(layout.upath(MASSES)).hats_creation_date
    except (FileNotFoundError, ValueError):
        return None


def table_properties(layout: CatalogLayout, records: list[dict], provenance: dict):
    from hats.catalog import PartitionInfo, TableProperties
    from hats.pixel_math.healpix_pixel import HealpixPixel

    pixels = [HealpixPixel(*parse_partition_path(r["path"])) for r in records]
    info = PartitionInfo.from_healpix(pixels)
    fields = TableProperties.new_provenance_dict(builder=f"survey-mass v{__version__}")
    fields["hats_estsize"] = int(sum(r["bytes"] for r in records) / 1024)
    fields["hats_creation_date"] = _existing_date(layout) or fields["hats_creation_date"]
    return info, TableProperties(
        catalog_name=provenance.get("job", {}).get("name", MASSES),
        catalog_type="object",
        total_rows=sum(r["rows"] for r in records),
        ra_column="ra",
        dec_column="dec",
        healpix_column=SPATIAL_INDEX_COLUMN,
        healpix_order=SPATIAL_INDEX_ORDER,
        hats_order=info.get_highest_order() if pixels else 0,
        moc_sky_fraction=float(f"{info.calculate_fractional_coverage():.5g}") if pixels else 0.0,
        hats_max_rows=max((r["rows"] for r in records), default=0),
        skymap_order=_skymap_order(info, pixels),
        default_columns=None,
        **fields,
        survey_mass_job_hash=provenance.get("job_hash"),
        survey_mass_provenance="../provenance.json",
    )


def _skymap_order(info, pixels) -> int:
    highest = info.get_highest_order() if pixels else 0
    return min(max(highest, SKYMAP_ORDER[0]), SKYMAP_ORDER[1])


def _histogram(layout: CatalogLayout, records: list[dict], order: int) -> np.ndarray:
    counts = np.zeros(12 * 4**order, dtype=np.int64)
    for record in records:
        with layout.fs.open(layout.absolute(record["path"]), "rb") as fh:
            index = pq.read_table(fh, columns=[SPATIAL_INDEX_COLUMN]).column(0).to_numpy()
        counts += np.bincount(pixels_at_order(index, order), minlength=counts.size)
    return counts


def write_hats_files(
    layout: CatalogLayout,
    records: list[dict],
    provenance: dict,
    write: Callable[[str, bytes], None],
) -> None:
    """partition_info.csv, skymap.fits, hats.properties and collection.properties.

    hats renders each file into a local folder; ``write`` then puts its bytes in place atomically
    on any filesystem (hats' own writers open object-store files in ways s3fs refuses).
    """
    from hats.catalog.dataset.collection_properties import CollectionProperties
    from hats.io.skymap import write_skymap

    info, properties = table_properties(layout, records, provenance)
    collection = CollectionProperties(
        name=properties.catalog_name,
        hats_primary_table_url=MASSES,
        all_margins=[MARGIN] if records else None,
        default_margin=MARGIN if records else None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        write_skymap(_histogram(layout, records, properties.skymap_order), local)
        properties.to_properties_file(local)
        collection.to_properties_file(local)
        (local / "partition_info.csv").write_text(info.as_dataframe().to_csv(index=False))
        for name in ("partition_info.csv", "skymap.fits", "hats.properties", "properties"):
            write(f"{layout.catalog_dir}/{name}", (local / name).read_bytes())
        write(
            f"{layout.root}/collection.properties", (local / "collection.properties").read_bytes()
        )
