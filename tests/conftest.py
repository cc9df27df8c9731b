"""Shared test fixtures: the real reference data beside the checkout, and quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: CI checks the repository out with ``shared/`` beside it; tests read real data only from there.
SHARED_DATA = Path(os.environ.get("SURVEY_MASS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data folder, or skip with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (set SURVEY_MASS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dask_client():
    """A real Dask cluster: a scheduler and two worker processes on 127.0.0.1."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with Client(cluster) as client:
            yield client


MOCK_JOB = """
name = "pipeline-test"
instruments = ["xray"]
batch_size = 16
[targets]
footprint = {{ kind = "cone", ra = 210.0, dec = -5.0, radius_deg = 1.3 }}
shard_order = 5
[source]
mock = {{ seed = 7 }}
[output]
url = "{url}"
"""


@pytest.fixture(scope="session")
def mock_catalog(tmp_path_factory, dask_client):
    """(spec, root, summary) of a small mock job run once for the whole session."""
    from survey_mass.config import parse_job_spec
    from survey_mass.pipeline import run_job

    root = tmp_path_factory.mktemp("mock-catalog") / "cat"
    spec = parse_job_spec(MOCK_JOB.format(url=root))
    return spec, root, run_job(spec, client=dask_client, progress=False)
