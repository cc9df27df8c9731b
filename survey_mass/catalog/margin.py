"""The margin cache beside the mass catalog, built by hats-import's own margin pipeline.

For each partition it holds the rows of neighbouring partitions within ``margin_arcsec`` of its
border, so that lsdb crossmatches against the catalog are exact at partition borders for any
radius up to the margin. It is derived data: rebuilt from the partitions at every finalize.

hats-import keeps every row of the margin pixels (order: the coarsest whose pixels are at least
``margin_arcsec`` wide, and finer than the deepest partition), so the margin is at least as wide as
asked, except where adaptive partitioning went so deep that finer pixels are narrower: the margin
catalog's ``hats_margin_threshold`` states the width it really has.
"""

from __future__ import annotations

import tempfile
import warnings

from survey_mass.catalog.paths import MARGIN, MASSES, CatalogLayout


def build_margin(layout: CatalogLayout, client, margin_arcsec: float) -> None:
    import hats
    from hats.catalog import TableProperties
    from hats.pixel_math import healpix_shim as hp
    from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments
    from hats_import.pipeline import pipeline_with_client

    highest = int(hats.read_hats(layout.upath(MASSES)).partition_info.get_highest_order())
    order = max(hp.margin2order(margin_thr_arcmin=margin_arcsec / 60.0), highest + 1)

    created = _creation_date(layout)
    if layout.fs.exists(layout.margin_dir):
        layout.fs.rm(layout.margin_dir, recursive=True)
    with tempfile.TemporaryDirectory() as tmp:  # hats-import writes locally; then it is copied
        args = MarginCacheArguments(
            input_catalog_path=layout.upath(MASSES),
            output_path=tmp,
            output_artifact_name=MARGIN,
            margin_threshold=margin_arcsec,
            margin_order=int(order),  # hats-import then keeps every row of the margin pixels
            progress_bar=False,
            resume=False,
        )
        with warnings.catch_warnings():  # hats-import reads its half-built margin this way
            warnings.filterwarnings("ignore", "Computing partitions from catalog parquet")
            pipeline_with_client(args, client)
        if created:  # a rebuilt margin keeps its first creation date: a repair changes no byte
            properties = TableProperties.read_from_dir(f"{tmp}/{MARGIN}")
            properties.hats_creation_date = created
            properties.to_properties_file(f"{tmp}/{MARGIN}")
        layout.fs.put(f"{tmp}/{MARGIN}", layout.margin_dir, recursive=True)


def _creation_date(layout: CatalogLayout) -> str | None:
    from hats.catalog import TableProperties

    try:
        return TableProperties.read_from_dir(layout.upath(MARGIN)).hats_creation_date
    except (FileNotFoundError, ValueError):
        return None
