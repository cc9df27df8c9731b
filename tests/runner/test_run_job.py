"""The whole path on a real Dask cluster: job spec -> shards -> cutouts -> ensemble -> Parquet."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from survey_mass.catalog.query import query
from survey_mass.mock import universe
from survey_mass.pixel_math import footprint_pixels
from survey_mass.runner.job import run_job
from survey_mass.targets.plan import shard_order

from support.layout import current_root


def read_catalog(root: Path) -> pd.DataFrame:
    return (
        ds.dataset(current_root(root) / "masses" / "dataset", format="parquet")
        .to_table()
        .to_pandas()
    )


@pytest.fixture(scope="module")
def finished(mock_catalog):
    return mock_catalog


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def truth_targets(spec) -> pd.DataFrame:
    order = shard_order(spec)
    frames = [
        universe.clusters_in(spec.source.mock, spec.targets.footprint, order, p)
        for p in footprint_pixels(spec.targets.footprint, order)
    ]
    return pd.concat(frames, ignore_index=True)


def test_every_target_is_catalogued_or_quarantined_once(finished):
    spec, root, summary = finished
    truth = truth_targets(spec)
    cat = read_catalog(root)
    quarantine = query(str(root), "SELECT * FROM quarantine")  # no file when none was quarantined
    assert len(truth) > 30
    assert summary.rows == len(cat) and summary.quarantined == len(quarantine)
    ids = pd.concat([cat["target_id"], quarantine["target_id"]])
    assert ids.is_unique
    assert set(ids) == set(truth["target_id"])


def test_predicted_masses_follow_the_mock_truth(finished):
    spec, root, _ = finished
    cat = read_catalog(root).merge(truth_targets(spec)[["target_id", "log10_m500"]], on="target_id")
    delta = cat["logm500"] - cat["log10_m500"]
    assert np.corrcoef(cat["logm500"], cat["log10_m500"])[0, 1] > 0.8
    assert abs(delta.mean()) < 0.05
    assert delta.std() < 0.12
    # the quoted 1-sigma errors are of the right size: between 50% and 90% of truths inside
    inside = (delta.abs() < cat["logm500_sigma"]).mean()
    assert 0.5 < inside < 0.9
    assert (cat["logm500_p84"] > cat["logm500_p16"]).all()
    assert (cat["logm500_p2_5"] < cat["logm500_p16"]).all()
    assert (cat["logm500_p97_5"] > cat["logm500_p84"]).all()


def test_catalog_reads_with_pyarrow_and_duckdb_with_units_and_provenance(finished):
    _, root, summary = finished
    schema = pq.read_schema(current_root(root) / "masses" / "dataset" / "_common_metadata")
    assert schema.field("ra").metadata[b"unit"] == b"deg"
    assert schema.field("logm500").metadata[b"unit"] == b"dex(solMass)"
    provenance = json.loads(schema.metadata[b"survey_mass.provenance"])
    assert provenance["job"]["name"] == "pipeline-test"
    assert len(provenance["models"]["xray"]["members"]) >= 3
    assert provenance["combination"].startswith("joint-v1@")  # the shipped joint model
    assert (
        pq.read_metadata(current_root(root) / "masses" / "dataset" / "_metadata").num_rows
        == summary.rows
    )
    files = str(current_root(root) / "masses" / "dataset" / "**" / "*.parquet")
    n, mean = duckdb.sql(f"SELECT count(*), avg(logm500) FROM read_parquet('{files}')").fetchall()[
        0
    ]
    assert n == summary.rows and 13.5 < mean < 15.0
    # files are HEALPix partitions: every row lies in its file's pixel
    order = provenance["order"]
    for part in (current_root(root) / "masses" / "dataset").rglob("Npix=*.parquet"):
        pixel = int(part.stem.split("=")[1])
        index = pq.read_table(part, columns=["_healpix_29"]).column(0).to_numpy()
        assert (index >> 2 * (29 - order) == pixel).all()


def test_rerunning_a_finished_job_does_nothing(finished, client):
    spec, root, _ = finished
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    summary = run_job(spec, client=client, progress=False)
    assert summary.already_complete
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def test_an_interrupted_job_resumes_only_missing_shards_to_the_same_catalog(
    finished, client, tmp_path
):
    spec, root, summary = finished
    copy = tmp_path / "resumed"
    shutil.copytree(root, copy)
    # interrupted: the killed run (id "abc", a dead pid) still holds the lease, two shards never
    # finished (no marker, its temp files), no metadata yet
    (current_root(copy) / "masses" / "dataset" / "_metadata").unlink()
    dead = {"run_id": "abc", "host": socket.gethostname(), "pid": 2**22 + 1, "heartbeat": 0}
    (copy / "_lease.json").write_text(json.dumps(dead))
    markers = [  # two shards that hold targets (a shard without any writes no partition)
        m
        for m in sorted((current_root(copy) / "_done").glob("Npix=*.json"))
        if json.loads(m.read_text())["rows"]
    ][:2]
    for marker in markers:
        pixel = int(marker.stem.split("=")[1])
        marker.unlink()
        part = next((current_root(copy) / "masses" / "dataset").rglob(f"Npix={pixel}.parquet"))
        part.write_bytes(b"half a file")
        (part.parent / f".Npix={pixel}.parquet.abc.0123abcd.tmp").write_bytes(b"junk")
    spec2 = spec.model_copy(update={"output": spec.output.model_copy(update={"url": str(copy)})})
    resumed = run_job(spec2, client=client, progress=False)
    assert resumed.shards_run == 2
    assert not list(copy.rglob("*.tmp"))  # the taken-over run's leftovers are cleaned
    assert not (copy / "_lease.json").exists()  # released at the end
    assert resumed.rows == summary.rows
    key = ["target_id"]
    a = read_catalog(root).sort_values(key).reset_index(drop=True)
    b = read_catalog(copy).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
