"""Faults a nightly run meets, on a real cluster: ``dask scheduler`` and ``dask worker`` processes.

A worker SIGKILLed mid-job, the driver SIGKILLed mid-job and re-run, and a shard write cut short by
SIGKILL must all end in the catalog a clean run writes: same rows, no duplicate, none missing, and
never a half-written partition visible to a reader.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest

from survey_mass.catalog.paths import CatalogLayout
from survey_mass.catalog.query import query
from survey_mass.catalog.writer import done_shards
from survey_mass.runner.job import run_job
from survey_mass.spec.job import parse_job_spec

from support.dask_cli import DaskCLICluster, wait_for
from support.layout import current_root

pytestmark = pytest.mark.timeout(180)

#: ~170 targets in 32 shards (8 of them non-empty): a few seconds of work for two workers
JOB = """
name = "faults"
batch_size = 16
[targets]
footprint = {{ kind = "cone", ra = 150.0, dec = 2.0, radius_deg = 1.0 }}
shard_order = 6
[source]
mock = {{ seed = 42, density_scale = 4.0 }}
[cluster]
kind = "address"
address = "{address}"
[output]
url = "{url}"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCLICluster(tmp_path_factory.mktemp("dask"), n_workers=2)
    yield c
    c.close()


def job_text(cluster: DaskCLICluster, url: Path) -> str:
    return JOB.format(address=cluster.address, url=url)


def read_tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(catalog, quarantine) sorted by target id, as a reader of the finished catalog sees them."""
    out = []
    for table in ("catalog", "quarantine"):
        df = query(str(root), f"SELECT * FROM {table}")
        out.append(df.sort_values("target_id").reset_index(drop=True))
    return out[0], out[1]


@pytest.fixture(scope="module")
def clean(cluster, tmp_path_factory):
    """The reference: the job run once without faults -> (catalog, quarantine, shards, folder)."""
    root = tmp_path_factory.mktemp("clean") / "cat"
    spec = parse_job_spec(job_text(cluster, root))
    summary = run_job(spec, client=cluster.client, progress=False)
    catalog, quarantine = read_tables(root)
    assert summary.rows == len(catalog) > 100 and catalog["target_id"].is_unique
    return catalog, quarantine, summary.shards, root


def assert_same_as_clean(root: Path, clean) -> None:
    catalog, quarantine = read_tables(root)
    assert catalog["target_id"].is_unique, "a shard's rows were written twice"
    pd.testing.assert_frame_equal(catalog, clean[0])
    pd.testing.assert_frame_equal(quarantine, clean[1])
    assert not list(root.rglob("*.tmp")), "a temporary file outlived the run"


def markers(root: Path) -> list[Path]:
    return (
        sorted((current_root(root) / "_done").glob("*.json"))
        if (current_root(root) / "_done").is_dir()
        else []
    )


def test_a_worker_killed_mid_job_leaves_the_catalog_identical_to_a_clean_run(
    cluster, clean, tmp_path
):
    root = tmp_path / "cat"
    spec = parse_job_spec(job_text(cluster, root))
    outcome: dict = {}

    def drive():
        try:
            outcome["summary"] = run_job(spec, client=cluster.client, progress=False)
        except BaseException as err:  # reported by the assertion below
            outcome["error"] = err

    driver = threading.Thread(target=drive)
    driver.start()
    wait_for(lambda: markers(root), 60, "the first finished shard")

    def busy_worker() -> str | None:
        by_address = {a: n for n, a in cluster.names().items()}
        for address, keys in cluster.client.processing().items():
            if any(str(k).startswith("shard-") for k in keys):
                return by_address.get(address)
        return None

    victim = wait_for(busy_worker, 30, "a worker weighing a shard")
    cluster.kill_worker(victim)
    assert len(markers(root)) < clean[2], "the job ended before the worker was killed"
    driver.join(120)
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert summary.shards_run == summary.shards == clean[2]
    assert_same_as_clean(root, clean)
    cluster.add_worker()  # back to two workers for the next test


def _survey_mass() -> list[str]:
    exe = shutil.which("survey-mass")
    return [exe] if exe else [sys.executable, "-m", "survey_mass.cli"]


def test_a_driver_killed_mid_job_and_rerun_writes_every_row_once(cluster, clean, tmp_path):
    root = tmp_path / "cat"
    job = tmp_path / "job.toml"
    job.write_text(job_text(cluster, root))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    driver = subprocess.Popen(
        [*_survey_mass(), "run", str(job), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for(lambda: markers(root) or driver.poll() is not None, 90, "the first shard")
    finally:
        os.kill(driver.pid, signal.SIGKILL)
    assert driver.wait(10) == -signal.SIGKILL
    assert not (current_root(root) / "masses" / "dataset" / "_metadata").exists(), (
        "the run finished before the driver was killed"
    )
    assert 0 < len(markers(root)) < clean[2]

    rerun = subprocess.run(
        [*_survey_mass(), "run", str(job), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"/{clean[2]} shards run" in rerun.stdout
    assert f"{clean[2]}/{clean[2]} shards run" not in rerun.stdout, "the re-run started over"
    assert_same_as_clean(root, clean)


#: run in a child process: weigh one shard, and SIGKILL the process halfway through writing PART
KILL_MID_WRITE = """
import os, signal, sys
from fsspec.implementations.local import LocalFileOpener
from survey_mass.spec.job import parse_job_spec
from survey_mass.catalog.lease import Lease
from survey_mass.catalog.paths import CatalogLayout
from survey_mass.runner.provenance import job_hash
from survey_mass.runner.shard import process_shard
from survey_mass.zoo.registry import resolve_models
from survey_mass.targets.plan import plan_shards

spec = parse_job_spec(open(sys.argv[1]).read())
part = sys.argv[2]
write = LocalFileOpener.write

def dying_write(self, data):
    if part in self.path:
        data = bytes(data)
        write(self, data[: max(1, len(data) // 2)])
        self.flush()
        os.fsync(self.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return write(self, data)

LocalFileOpener.write = dying_write
models = resolve_models(spec.models, spec.instruments)
shard = next(s for s in plan_shards(spec)[1] if s.pixel == int(sys.argv[3]))
lease = Lease(CatalogLayout(spec.output.url), "killed").acquire()  # as its run would hold it
process_shard(spec, shard, models, job_hash(spec, models), lease.run_id)
"""


@pytest.mark.parametrize("part", ["/dataset/", "/_done/"])
def test_a_shard_whose_write_was_killed_never_appears_half_written(cluster, clean, tmp_path, part):
    root = tmp_path / "cat"
    job = tmp_path / "job.toml"
    job.write_text(job_text(cluster, root))
    spec = parse_job_spec(job.read_text())
    order = spec.targets.shard_order
    shard_of_row = clean[0]["_healpix_29"].to_numpy() >> 2 * (29 - order)
    pixel = int(shard_of_row[0])
    # a job interrupted before it finished shard `pixel`: the clean run without that shard
    shutil.copytree(clean[3], root)
    layout = CatalogLayout(str(root))  # its current version
    for path in (
        layout.metadata,
        layout.done_marker(pixel),
        layout.catalog_file(order, pixel),
        layout.quarantine_file(order, pixel),
    ):
        Path(path).unlink(missing_ok=True)  # a shard without quarantined rows has no file
    script = tmp_path / "kill_mid_write.py"
    script.write_text(textwrap.dedent(KILL_MID_WRITE))
    child = subprocess.run(
        [sys.executable, str(script), str(job), part, str(pixel)],
        capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    partial = list(root.rglob(".*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # the cut-short write, hidden
    assert pixel not in done_shards(layout, clean_hash(clean))  # the shard does not count as done
    # readers never meet the half file: pyarrow and DuckDB skip hidden files (a visible corrupt
    # file would make both raise)
    rows = ds.dataset(current_root(root) / "masses" / "dataset", format="parquet").count_rows()
    glob = f"{current_root(root)}/masses/dataset/**/*.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(rows,)]
    written = Path(layout.catalog_file(order, pixel)).exists()
    assert written == (part == "/_done/")  # a catalog part exists whole or not at all
    assert rows == len(clean[0]) - (0 if written else (shard_of_row == pixel).sum())

    summary = run_job(spec, client=cluster.client, progress=False)
    assert summary.shards_run == 1  # only the interrupted shard ran again
    assert_same_as_clean(root, clean)


def clean_hash(clean) -> str:
    return json.loads(next((current_root(clean[3]) / "_done").glob("*.json")).read_text())[
        "job_hash"
    ]
