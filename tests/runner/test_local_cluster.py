"""Local clusters: workers forked with TensorFlow loaded; stack profiles only on request."""

from __future__ import annotations

import os
import signal
import time

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


def _started_from_forkserver(dask_worker) -> tuple:
    import gc
    import signal
    import sys

    from survey_mass.runner.worker_plugin import configure_tensorflow

    imported_before_any_task = "tensorflow" in sys.modules
    configure_tensorflow(2)  # the forkserver imported TensorFlow but must not have started it
    tf = sys.modules["tensorflow"]
    return (
        imported_before_any_task,
        tf.config.threading.get_intra_op_parallelism_threads(),
        signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        gc.get_freeze_count() > 0,  # the imports' objects stay out of collections: pages shared
    )


def test_forked_workers_share_tensorflow_yet_set_their_threads_and_leave_ctrl_c_to_the_driver():
    spec = ComputeSpec(n_workers=1, dashboard=False, memory_limit="2GiB")
    assert spec.worker_start == "forkserver"
    with make_cluster(spec) as cluster, Client(cluster) as client:
        (first,) = client.run(_started_from_forkserver).values()
        assert first == (True, 2, True, True)
        # a worker that dies (a crash, the memory limit) is restarted by its nanny: forked as well
        ((address, pid),) = client.run(os.getpid).items()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while set(client.scheduler_info()["workers"]) in (set(), {address}):
            assert time.monotonic() < deadline, "the nanny did not restart its worker in 120 s"
            time.sleep(0.2)
        assert list(client.run(_started_from_forkserver).values()) == [first]


def test_forked_workers_see_the_environment_the_driver_has_when_their_cluster_starts(monkeypatch):
    # object-store credentials set after the process's first cluster started the forkserver
    spec = ComputeSpec(n_workers=1, dashboard=False, memory_limit="1GiB")
    with make_cluster(spec):
        pass  # the forkserver runs from now on, with the environment of this moment
    monkeypatch.setenv("SURVEY_MASS_TEST_TOKEN", "set-after-the-forkserver-started")
    with make_cluster(spec) as cluster, Client(cluster) as client:
        seen = client.run(_worker_env, "SURVEY_MASS_TEST_TOKEN")
    assert list(seen.values()) == ["set-after-the-forkserver-started"]


def _worker_env(name: str) -> str | None:
    import os  # the worker's own (a pickled os.environ.get would carry the driver's mapping)

    return os.environ.get(name)
