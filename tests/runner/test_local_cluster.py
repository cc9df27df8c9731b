"""The local cluster a job starts: workers sample their stacks only when asked to."""

from __future__ import annotations

import pytest
from distributed import Client

from survey_mass.runner.dask_cluster import make_cluster
from survey_mass.spec.job import ComputeSpec


def _profiling(dask_worker) -> bool:
    return "profile-cycle" in dask_worker.periodic_callbacks


@pytest.mark.parametrize("profile", [False, True])
def test_workers_keep_a_stack_profile_only_when_asked(profile):
    # a batch job's workers otherwise keep a second-by-second sample tree of the last 1000 s
    spec = ComputeSpec(n_workers=1, dashboard=False, memory_limit="1GiB", worker_profile=profile)
    with make_cluster(spec) as cluster, Client(cluster) as client:
        assert list(client.run(_profiling).values()) == [profile]
