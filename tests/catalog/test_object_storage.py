"""A job writes its catalog to S3 and users read it there: a real S3-compatible server (moto in
server mode on 127.0.0.1), real s3fs, the real job on a Dask cluster started with the endpoint."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")
lsdb = pytest.importorskip("lsdb")

from survey_mass.catalog.integrity import verify  # noqa: E402
from survey_mass.catalog.paths import MASSES  # noqa: E402
from survey_mass.catalog.query import cone_search  # noqa: E402
from survey_mass.catalog.reader import open_catalog  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(endpoint, environment) of a moto S3 server with one bucket."""
    port = _free_port()
    server = shutil.which("moto_server")
    cmd = [server] if server else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(
        [*cmd, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.skip("the moto S3 server did not start")
            time.sleep(0.2)
    yield endpoint, env
    proc.kill()


def test_a_job_writes_to_and_is_queried_from_an_s3_endpoint(s3, monkeypatch, tmp_path):
    endpoint, env = s3
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir("survey-mass-test")
    from distributed import Client

    from survey_mass.runner.dask_cluster import make_cluster
    from survey_mass.runner.job import run_job
    from survey_mass.spec.job import ComputeSpec, parse_job_spec

    spec = parse_job_spec("""
name = "s3job"
[targets]
footprint = { kind = "cone", ra = 210.0, dec = -5.0, radius_deg = 0.8 }
shard_order = 5
[source]
mock = { seed = 7 }
[output]
url = "s3://survey-mass-test/out"
""")
    # a job's workers get the endpoint and credentials of this environment, also where they
    # are forked from a forkserver started before these were set (the suite's first cluster)
    with make_cluster(ComputeSpec(n_workers=1, dashboard=False)) as cluster:
        with Client(cluster) as client:
            summary = run_job(spec, client=client, progress=False)
            assert summary.rows > 0
            assert run_job(spec, client=client, progress=False).already_complete
            # lsdb reads it on S3 too (on these workers, which have the credentials); a private
            # bucket needs a UPath with them (hats takes a bare s3:// string as a public bucket)
            from upath import UPath

            url = "s3://survey-mass-test/out"
            lsdb_rows = len(lsdb.open_catalog(UPath(url, anon=False)).compute())
    assert fs.exists(f"survey-mass-test/out/v1/{MASSES}/dataset/_metadata")  # the first version
    assert verify(url, deep=True).ok
    assert len(open_catalog(url)) == summary.rows
    cone = cone_search(url, 210.0, -5.0, 0.3)
    assert 0 < len(cone.rows) < summary.rows
    assert lsdb_rows == summary.rows
