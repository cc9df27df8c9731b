"""The mass catalog is a HATS catalog that the ecosystem's own clients read as users expect:
hats (strict validation), lsdb (values, crossmatch with the margin cache), DuckDB and pyarrow."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from survey_mass.catalog.paths import MARGIN, MASSES
from survey_mass.catalog.query import query
from survey_mass.runner.job import run_job

hats = pytest.importorskip("hats")
lsdb = pytest.importorskip("lsdb")
from hats.io.validation import is_valid_catalog  # noqa: E402

from support.layout import current_root  # noqa: E402
from support.mass_catalog_factory import write_mass_catalog  # noqa: E402


def test_the_output_passes_hats_strict_validation_as_a_collection_and_as_a_catalog(mock_catalog):
    _, root, _ = mock_catalog
    assert is_valid_catalog(root, strict=True)  # collection: the masses and their margin
    assert is_valid_catalog(current_root(root) / MASSES, strict=True)
    assert is_valid_catalog(current_root(root) / MARGIN, strict=True)
    properties = hats.read_hats(current_root(root) / MASSES).catalog_info
    assert properties.ra_column == "ra" and properties.healpix_column == "_healpix_29"
    assert properties.total_rows == len(query(str(root), "SELECT * FROM catalog"))
    assert "survey-mass" in properties.hats_builder
    assert (current_root(root) / MASSES / "skymap.fits").exists()
    assert hats.read_hats(current_root(root) / MARGIN).catalog_info.margin_threshold >= 300.0


def test_lsdb_opens_the_output_with_the_rows_and_values_survey_mass_query_gives(mock_catalog):
    _, root, _ = mock_catalog
    ours = query(str(root), "SELECT * FROM catalog").sort_values("target_id")
    catalog = lsdb.open_catalog(root)  # the collection: primary table and its default margin
    assert catalog.margin is not None
    theirs = catalog.compute().sort_values("target_id")
    assert theirs.index.name == "_healpix_29"  # lsdb indexes by the spatial index
    assert list(theirs.columns) == [c for c in ours.columns if c != "_healpix_29"]
    np.testing.assert_array_equal(theirs.index.to_numpy(), ours["_healpix_29"].to_numpy())
    assert theirs["target_id"].tolist() == ours["target_id"].tolist()
    np.testing.assert_array_equal(theirs["logm500"].to_numpy(float), ours["logm500"].to_numpy())


def test_the_dataset_globs_cleanly_with_no_quarantine_row_and_no_empty_partition(mock_catalog):
    _, root, summary = mock_catalog
    glob = f"{current_root(root)}/{MASSES}/dataset/**/*.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [
        (summary.rows,)
    ]
    assert (
        ds.dataset(current_root(root) / MASSES / "dataset", format="parquet").count_rows()
        == summary.rows
    )
    files = list((current_root(root) / MASSES / "dataset").rglob("Npix=*.parquet"))
    assert files and all(pq.read_metadata(f).num_rows > 0 for f in files)
    columns = duckdb.sql(f"SELECT * FROM read_parquet('{glob}') LIMIT 0").columns
    assert "reason" not in columns  # quarantine rows live elsewhere
    ours = query(str(root), "SELECT * FROM catalog LIMIT 0").columns
    assert not {"Norder", "Dir", "Npix"} & set(ours)  # no hive partition columns leak


def test_a_crowded_shard_is_split_into_partitions_of_bounded_size(dask_client, tmp_path):
    from survey_mass.spec.job import parse_job_spec

    spec = parse_job_spec(f"""
name = "split"
[targets]
footprint = {{ kind = "cone", ra = 150.0, dec = 2.0, radius_deg = 1.0 }}
shard_order = 3
[source]
mock = {{ seed = 3, density_scale = 4.0 }}
[output]
url = "{tmp_path / "out"}"
partition_rows = 10
""")
    summary = run_job(spec, client=dask_client, progress=False)
    info = pd.read_csv(current_root(tmp_path / "out") / MASSES / "partition_info.csv")
    assert (info["Norder"] > 3).any()  # deeper than the shards where they were crowded
    counts = [
        pq.read_metadata(f).num_rows
        for f in (tmp_path / "out").rglob("Npix=*.parquet")
        if MASSES in f.parts
    ]
    assert max(counts) <= 10 and sum(counts) == summary.rows
    assert is_valid_catalog(tmp_path / "out", strict=True)


def test_an_lsdb_crossmatch_with_the_real_psz2_gives_survey_mass_s_own_pairs(
    real_catalog_paths, tmp_path
):
    from astropy import units as u

    from survey_mass.crossmatch.match import MatchSpec
    from survey_mass.crossmatch.partitions import match_catalog
    from survey_mass.references import read_catalog

    psz2 = read_catalog("psz2", paths=real_catalog_paths).dropna(subset=["ra", "dec"])
    rng = np.random.default_rng(5)
    near = psz2.sample(400, random_state=1)
    rows = pd.DataFrame(
        {  # a mass catalog near real PSZ2 clusters: offsets of up to ~3 arcmin
            "target_id": [f"T{i}" for i in range(len(near))],
            "ra": (near["ra"].to_numpy() + rng.normal(0, 0.03, len(near))) % 360,
            "dec": np.clip(near["dec"].to_numpy() + rng.normal(0, 0.03, len(near)), -90, 90),
            "z": near["z"].to_numpy(),
            "logm500": np.full(len(near), 14.5),
        }
    )
    root = write_mass_catalog(tmp_path / "masses_out", rows, order=2)
    radius = 180 * u.arcsec
    ours = match_catalog(root, psz2.reset_index(drop=True), MatchSpec(radius=radius))
    reference = lsdb.from_dataframe(
        psz2[["id", "ra", "dec"]].reset_index(drop=True),
        ra_column="ra",
        dec_column="dec",
        margin_threshold=radius.to_value(u.arcsec),
    )
    theirs = (
        lsdb.open_catalog(tmp_path / "masses_out" / MASSES)
        .crossmatch(reference, radius_arcsec=radius.to_value(u.arcsec), n_neighbors=1)
        .compute()
    )
    ours_pairs = set(zip(ours["target_id_pred"], ours["id_ref"], strict=True))
    right_id = next(c for c in theirs.columns if c.startswith("id_"))
    theirs_pairs = set(zip(theirs["target_id_masses"], theirs[right_id], strict=True))
    assert len(ours_pairs) > 100
    assert ours_pairs == theirs_pairs
    assert json.loads((tmp_path / "masses_out" / "provenance.json").read_text())["order"] == 2
