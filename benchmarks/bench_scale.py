"""Scale: peak memory and time of whole runs (driver + workers) at 10k, 100k, 1M mock targets.

    python benchmarks/bench_scale.py --targets 10000 100000 --mode full
    python benchmarks/bench_scale.py --targets 10000 100000 1000000 --mode targets-only
    python benchmarks/bench_scale.py --smoke       # seconds: checks the stub weighed every target

``full`` is the production path: run_job on a LocalCluster (2 workers x 1 thread), mock X-ray
cutouts, preprocessing, the 5-member ensemble, Parquet shards, metadata. ``targets-only`` is the
same run_job, cluster, shard plan, mock target draw, row checks, catalog writes and metadata, with
the weighing (cutouts + CNN) replaced on the workers by a constant mass (a worker preload), so the
part of a run whose memory could grow with the footprint is measured at 1M targets in minutes.

Memory is the peak of the summed RSS (and PSS, which counts shared library pages once) of the driver,
the nannies, the forkserver and the workers, sampled every 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

STUB = '''
"""Worker preload for --mode targets-only: weigh every target at a constant mass."""
import survey_mass.runner.shard as shard

def weigh(source, ensemble, targets, instrument, xp, batch_size, tta):
    with open({calls!r}, "a") as log:  # one line per call: the bench checks the stub ran
        log.write(f"{{len(targets)}}\\n")
    return {{t.target_id: (14.5, 0.02, 0.1, float("nan")) for t in targets}}, {{}}

shard.weigh = weigh
'''
#: mock clusters per deg^2 at density_scale 10 (the universe draws ~10.2 per deg^2 at 1)
DENSITY_SCALE = 10.0


class PeakRSS:
    """Samples the summed RSS of this process and its children (the workers) in a thread."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_driver = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                processes = [me, *me.children(recursive=True)]
                driver = me.memory_info().rss
                total = sum(p.memory_info().rss for p in processes)
                # PSS shares each shared page (TensorFlow's libraries) among the processes using it
                pss = sum(p.memory_full_info().pss for p in processes)
            except psutil.Error:
                continue
            self.peak = max(self.peak, total)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_driver = max(self.peak_driver, driver)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def job_for(n_targets: int, url: str):
    """A mock job whose box footprint holds about ``n_targets`` clusters."""
    from survey_mass.mock.universe import clusters_per_deg2
    from survey_mass.spec.job import parse_job_spec
    from survey_mass.spec.universe import UniverseSpec

    density = clusters_per_deg2(UniverseSpec(density_scale=DENSITY_SCALE))
    area = n_targets / density
    # a box about twice as wide in RA as its half-height: ra 0..2h, dec -h..h
    half = next(
        h for h in np.arange(0.5, 90.0, 0.05) if 4 * h * np.sin(np.radians(h)) * 57.29578 >= area
    )
    width = area / (2 * np.sin(np.radians(half)) * 57.29578)
    ra_max, dec = min(width, 360.0), half
    return parse_job_spec(f"""
name = "scale-{n_targets}"
batch_size = 64
device = "cpu"
[targets]
footprint = {{ kind = "box", ra_min = 0.0, ra_max = {ra_max:.4f}, dec_min = {-dec:.3f}, dec_max = {dec:.3f} }}
[source]
mock = {{ seed = 99, density_scale = {DENSITY_SCALE} }}
[cluster]
n_workers = 2
threads_per_worker = 1
memory_limit = "3GiB"
dashboard = false
[output]
url = "{url}"
""")


def run_once(
    n_targets: int,
    mode: str,
    workdir: Path,
    worker_profile: bool = False,
    worker_start: str = "forkserver",
) -> dict:
    from distributed import Client

    from survey_mass.runner.dask_cluster import make_cluster
    from survey_mass.runner.job import run_job
    from survey_mass.targets.plan import plan_shards

    spec = job_for(n_targets, str(workdir / f"cat-{mode}-{n_targets}"))
    preload, calls = [], workdir / f"stub_calls-{n_targets}.txt"
    if mode == "targets-only":
        stub = workdir / "targets_only_stub.py"
        calls.write_text("")
        stub.write_text(STUB.format(calls=str(calls)))
        preload = [str(stub)]
    # the job's own cluster (runner.dask_cluster), as `survey-mass run` starts it
    compute = spec.cluster.model_copy(
        update={
            "options": {"preload": preload},
            "worker_profile": worker_profile,
            "worker_start": worker_start,
        }
    )
    with PeakRSS() as rss:
        start = time.perf_counter()
        with make_cluster(compute) as cluster, Client(cluster) as client:
            summary = run_job(spec, client=client, progress=False)
        seconds = time.perf_counter() - start
    stubbed = sum(map(int, calls.read_text().split())) if mode == "targets-only" else 0
    if mode == "targets-only" and not 0 < stubbed <= summary.rows + summary.quarantined:
        raise RuntimeError(f"the targets-only stub weighed {stubbed} targets: it did not run")
    return {
        "stub_weighed_targets": stubbed,
        "mode": mode,
        "worker_profile": worker_profile,
        "worker_start": worker_start,
        "targets": summary.rows + summary.quarantined,
        "weighed": summary.rows,
        "shards": summary.shards,
        "order": plan_shards(spec)[0],
        "seconds": round(seconds, 1),
        "targets_per_s": round((summary.rows + summary.quarantined) / seconds, 1),
        "peak_rss_total_gib": round(rss.peak / 2**30, 3),
        "peak_pss_total_gib": round(rss.peak_pss / 2**30, 3),
        "peak_rss_driver_gib": round(rss.peak_driver / 2**30, 3),
    }


def machine() -> dict:
    return {
        "cpu": next(
            (
                ln.split(":", 1)[1].strip()
                for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")
            ),
            platform.machine(),
        ),
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--mode", choices=["full", "targets-only"], default="targets-only")
    parser.add_argument(
        "--worker-profile",
        action="store_true",
        help="workers sample their stacks (cluster.worker_profile; off in production)",
    )
    parser.add_argument(
        "--worker-start",
        choices=["forkserver", "spawn"],
        default="forkserver",
        help="how the cluster starts its workers (cluster.worker_start)",
    )
    parser.add_argument("--json", type=Path, help="append each result as a JSON line here")
    parser.add_argument("--smoke", action="store_true", help="300 targets-only targets, seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.targets, args.mode = [300], "targets-only"
    print(json.dumps(machine()))
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for n in args.targets:
            result = run_once(n, args.mode, Path(tmp), args.worker_profile, args.worker_start)
            result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
            print(json.dumps(result), flush=True)
            if args.json:
                with args.json.open("a") as fh:
                    fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
