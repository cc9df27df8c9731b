"""Warm workers: a small job on a cluster that already ran one, against its pure compute time.

    python benchmarks/bench_warm.py                  # the demo job (jobs/demo.toml), 3 warm runs
    python benchmarks/bench_warm.py --smoke          # seconds: a 0.5-degree cone, X-ray only

A nightly schedule that points every run at one long-lived scheduler (``[cluster] kind =
"address"``) pays the workers' start-up and model loading once. This measures what it still pays
per job: the job's own local cluster (``make_cluster``, 2 workers x 1 thread; ``--worker-start
spawn`` for workers that each import TensorFlow themselves) runs the job once cold, then ``--warm`` more times
into fresh outputs, and the same targets are weighed in this process with the models already
loaded (``survey_mass.weigh``, both cores: the pure compute the job cannot avoid). The ratio is
warm job wall time / pure compute time. It also checks that every worker kept the same loaded
ensemble objects across the jobs (models loaded once per worker process, never per job).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_ensembles() -> dict[str, int]:
    """On a worker: id of every ensemble object in the process-wide cache."""
    from survey_mass.infer.ensemble import _LOADED

    return {str(key[1]): id(value) for key, value in _LOADED.items()}


def pure_compute(spec, catalog) -> float:
    """Seconds to weigh the catalog's targets here, models loaded and graphs traced before."""
    import numpy as np

    from survey_mass.infer.ensemble import load_ensemble
    from survey_mass.mock.source import MockSource
    from survey_mass.runner.worker_plugin import configure_tensorflow
    from survey_mass.sources.base import Target
    from survey_mass.zoo.registry import resolve_models

    configure_tensorflow(2)
    models = resolve_models(spec.models, spec.instruments)
    ensembles = {i: load_ensemble(models.entries[i].path) for i in spec.instruments}
    source = MockSource(spec.source.mock)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in catalog.itertuples()]
    from survey_mass.infer.weigh import weigh

    def once() -> float:
        start = time.perf_counter()
        for instrument, ensemble in ensembles.items():
            weigh(source, ensemble, targets, instrument, np, spec.batch_size, spec.models.tta)
        return time.perf_counter() - start

    once()  # traces each graph, as the warm workers already have: the second run is the compute
    return once()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default=str(ROOT / "jobs" / "demo.toml"))
    parser.add_argument("--warm", type=int, default=3, help="warm runs after the cold one")
    parser.add_argument("--smoke", action="store_true", help="a tiny X-ray job, seconds")
    parser.add_argument(
        "--worker-start",
        choices=["forkserver", "spawn"],
        default="forkserver",
        help="how the cluster starts its workers (cluster.worker_start)",
    )
    args = parser.parse_args()

    from distributed import Client

    from survey_mass.catalog.reader import read_mass_catalog
    from survey_mass.runner.dask_cluster import make_cluster
    from survey_mass.runner.job import run_job
    from survey_mass.spec.job import load_job_spec

    spec = load_job_spec(args.job)
    spec = spec.model_copy(update={"report": None})
    if args.smoke:
        footprint = spec.targets.footprint.model_copy(update={"radius_deg": 0.5})
        spec = spec.model_copy(
            update={
                "instruments": ["xray"],
                "models": spec.models.model_copy(update={"joint": "inverse-variance"}),
                "targets": spec.targets.model_copy(update={"footprint": footprint}),
            }
        )
        args.warm = 2
    work = Path(tempfile.mkdtemp(prefix="bench_warm_"))
    runs = []
    compute_spec = spec.cluster.model_copy(
        update={
            "kind": "local",
            "n_workers": 2,
            "threads_per_worker": 1,
            "dashboard": False,
            "worker_start": args.worker_start,
        }
    )
    start = time.perf_counter()
    with make_cluster(compute_spec) as cluster, Client(cluster) as client:
        cluster_seconds = time.perf_counter() - start
        for k in range(1 + args.warm):
            run = spec.model_copy(
                update={"output": spec.output.model_copy(update={"url": str(work / f"run{k}")})}
            )
            start = time.perf_counter()
            summary = run_job(run, client=client, progress=False)
            runs.append({"seconds": time.perf_counter() - start, "rows": summary.rows})
            if k == 0:
                first = client.run(loaded_ensembles)
        last = client.run(loaded_ensembles)
    catalog = read_mass_catalog(str(work / "run0"))
    compute = pure_compute(spec, catalog)
    warm = min(r["seconds"] for r in runs[1:])
    print(
        json.dumps(
            {
                "benchmark": "warm cluster job vs pure compute",
                "job": Path(args.job).name + (" (smoke)" if args.smoke else ""),
                "instruments": spec.instruments,
                "targets": len(catalog),
                "worker_start": args.worker_start,
                "cluster_start_seconds": round(cluster_seconds, 2),
                "cold_seconds": round(runs[0]["seconds"], 2),
                "warm_seconds": [round(r["seconds"], 2) for r in runs[1:]],
                "pure_compute_seconds": round(compute, 2),
                "warm_over_compute": round(warm / compute, 2),
                "models_kept_loaded": first == last and all(first.values()),
                "ensembles_per_worker": sorted(len(v) for v in last.values()),
                "same_rows_every_run": len({r["rows"] for r in runs}) == 1,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "load_average": [round(x, 1) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
