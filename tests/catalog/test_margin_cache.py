"""The margin cache, built partition by partition on the cluster, is the margin catalog that
hats-import's own pipeline makes from the same partitions: the same rows beside the same pixels
(the footprint's negative tree included), a valid HATS margin catalog lsdb opens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from survey_mass.catalog.margin import build_margin
from survey_mass.catalog.paths import MARGIN, MASSES, CatalogLayout, parse_partition_path

hats = pytest.importorskip("hats")
pytest.importorskip("hats_import")
from hats.io.validation import is_valid_catalog  # noqa: E402

from support.mass_catalog_factory import write_mass_catalog  # noqa: E402


def rows_by_pixel(folder) -> set[tuple[int, int, str]]:
    """(order, pixel, target id) of every row of a HATS dataset folder."""
    rows = set()
    for path in folder.rglob("Npix=*.parquet"):
        order, pixel = parse_partition_path(str(path))
        ids = pq.read_table(path, columns=["target_id"]).column(0).to_pylist()
        rows |= {(order, pixel, target) for target in ids}
    return rows


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """3,000 rows over a 12-degree cone, order-3 partitions: borders, corners, a footprint edge."""
    rng = np.random.default_rng(4)
    n = 3000
    ra = 40.0 + rng.uniform(-12, 12, n)
    dec = 10.0 + rng.uniform(-12, 12, n)
    rows = pd.DataFrame(
        {"target_id": [f"T{i}" for i in range(n)], "ra": ra, "dec": dec, "z": 0.2, "logm500": 14.3}
    )
    root = tmp_path_factory.mktemp("margin") / "cat"
    write_mass_catalog(root, rows, order=3)
    return root


def test_the_margin_holds_the_rows_hats_import_puts_beside_each_pixel(
    crowded, dask_client, tmp_path
):
    from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments
    from hats_import.pipeline import pipeline_with_client

    layout = CatalogLayout(str(crowded))
    build_margin(layout, dask_client, margin_arcsec=1800.0, run_id="test")
    args = MarginCacheArguments(
        input_catalog_path=layout.upath(MASSES),
        output_path=tmp_path,
        output_artifact_name="reference",
        margin_threshold=1800.0,
        margin_order=6,  # what build_margin picks for 30': margin2order(30'), finer than order 3
        progress_bar=False,
        resume=False,
    )
    pipeline_with_client(args, dask_client)
    ours = rows_by_pixel(crowded / MARGIN / "dataset")
    reference = rows_by_pixel(tmp_path / "reference" / "dataset")
    assert len(ours) > 300 and ours == reference
    partitions = {(p.order, p.pixel) for p in hats.read_hats(crowded / MASSES).get_healpix_pixels()}
    beside = {(order, pixel) for order, pixel, _ in ours}
    assert beside & partitions and beside - partitions  # and pixels outside the footprint
    assert is_valid_catalog(crowded / MARGIN, strict=True)
    margin = hats.read_hats(crowded / MARGIN)
    assert margin.catalog_info.catalog_type == "margin"
    assert margin.catalog_info.margin_threshold == pytest.approx(
        hats.read_hats(tmp_path / "reference").catalog_info.margin_threshold
    )
    assert margin.catalog_info.total_rows == len(ours)
