"""The Dask cluster a job runs on: local processes, local GPUs, an existing scheduler, Slurm or
Kubernetes. Optional back-ends are imported only when asked for (dask_cuda needs a GPU to import).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from multiprocessing import get_all_start_methods

import dask
from distributed import Client, LocalCluster

from survey_mass.errors import UserError
from survey_mass.spec.job import ComputeSpec


def _optional(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise UserError(
            f"cluster needs {module} ({err}); install it: pip install 'survey-mass[{extra}]'"
        ) from err


def slurm_worker_options(spec: ComputeSpec) -> dict:
    """SLURMCluster arguments: one worker process per job with the job's threads and memory.

    Partition, GPUs (``--gres``), walltime and the worker command (``dask_cuda.cli`` on GPU nodes)
    come from ``cluster.options`` or the ``jobqueue.slurm`` Dask config (deploy/slurm/jobqueue.yaml).
    """
    return {
        "cores": spec.threads_per_worker,
        "processes": 1,
        "memory": spec.memory_limit,
        **spec.options,
    }


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT ignored (inherited across exec), so Ctrl-C reaches only
    the driver, which stops them in order instead of every worker dying with a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _local_cluster(spec: ComputeSpec, **overrides) -> LocalCluster:
    options = {**spec.options, **overrides}
    with _workers_ignore_ctrl_c():
        return LocalCluster(
            n_workers=spec.n_workers,
            threads_per_worker=spec.threads_per_worker,
            processes=True,
            memory_limit=spec.memory_limit,
            # a free port (None means the default :8787, often taken); no dashboard when turned off
            dashboard_address=":0" if spec.dashboard else None,
            scheduler_kwargs={"dashboard": spec.dashboard},
            silence_logs=logging.WARNING,
            **options,
        )


def _local_cuda_cluster(spec: ComputeSpec):
    dask_cuda = _optional("dask_cuda", "gpu")
    return dask_cuda.LocalCUDACluster(
        threads_per_worker=spec.threads_per_worker,
        memory_limit=spec.memory_limit,
        **spec.options,
    )


#: Dask config of the workers' statistical profiler (the nannies pass it to the workers they start)
WORKER_PROFILE = "distributed.worker.profile.enabled"
#: Dask config of how a nanny starts its worker process (read when it starts one)
START_METHOD = "distributed.worker.multiprocessing-method"
#: the module the forkserver imports before it forks workers (``worker_start = 'forkserver'``)
WORKER_IMPORTS = "survey_mass.runner.worker_imports"


def _preload_forkserver() -> None:
    """Have the process's forkserver import :data:`WORKER_IMPORTS` before its first fork. The
    forkserver starts with the first worker and serves every later local cluster of the process;
    once it runs, this changes nothing."""
    from distributed.utils import get_mp_context

    # distributed sets its own preload list on its first forkserver context; ours replaces it
    get_mp_context().set_forkserver_preload(["distributed", WORKER_IMPORTS])


@contextlib.contextmanager
def make_cluster(spec: ComputeSpec) -> Iterator:
    """A new cluster for ``spec`` (not for kind = 'address'), closed on leaving the block.

    A local cluster's worker settings (start method, stack profiler) stay set while it runs: the
    nannies read them whenever they start a worker, so a worker restarted after a crash or the
    memory limit starts as the first ones did (by default forked from the forkserver, and so with
    TensorFlow loaded and Ctrl-C left to the driver).
    """
    with _worker_config(spec), _new_cluster(spec) as cluster:
        yield cluster


def _worker_config(spec: ComputeSpec) -> contextlib.AbstractContextManager:
    if spec.kind == "local":
        start = spec.worker_start if spec.worker_start in get_all_start_methods() else "spawn"
        return dask.config.set({WORKER_PROFILE: spec.worker_profile, START_METHOD: start})
    if spec.kind == "local-cuda":  # a fresh process per GPU worker: CUDA does not survive a fork
        return dask.config.set({WORKER_PROFILE: spec.worker_profile})
    return contextlib.nullcontext()


def _new_cluster(spec: ComputeSpec):
    if spec.kind == "local":
        # no forkserver on Windows: _worker_config has its workers spawned
        if dask.config.get(START_METHOD) != "forkserver":
            return _local_cluster(spec)
        _preload_forkserver()
        # a forked worker has the forkserver's environment, taken when the process's first local
        # cluster started; a spawned one has the driver's: give forked workers the driver's too
        # (object-store credentials, proxies set since then)
        return _local_cluster(spec, env={**os.environ, **spec.options.get("env", {})})
    if spec.kind == "local-cuda":
        return _local_cuda_cluster(spec)
    if spec.kind == "slurm":
        jobqueue = _optional("dask_jobqueue", "deploy")
        cluster = jobqueue.SLURMCluster(**slurm_worker_options(spec))
        cluster.scale(jobs=spec.n_workers)
        return cluster
    if spec.kind == "kubernetes":
        operator = _optional("dask_kubernetes.operator", "deploy")
        return operator.KubeCluster(n_workers=spec.n_workers, **spec.options)
    raise UserError(f"cluster.kind {spec.kind!r} does not make a cluster")


@contextlib.contextmanager
def open_client(spec: ComputeSpec, client: Client | None = None) -> Iterator[Client]:
    """A client for the job: the one given, a scheduler address, or a cluster started and closed here."""
    if client is not None:
        yield client
        return
    if spec.kind == "address":
        with Client(spec.address, timeout="30s") as c:
            yield c
        return
    with make_cluster(spec) as cluster, Client(cluster) as c:
        if spec.dashboard and c.dashboard_link:
            print(f"dashboard: {c.dashboard_link}", file=sys.stderr)
        yield c
