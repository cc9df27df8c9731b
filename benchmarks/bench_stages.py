"""Where a worker's time goes in steady state: the share of each stage of the production path.

    python benchmarks/bench_stages.py [--shards 6] [--instruments xray,sz,optical]
    python benchmarks/bench_stages.py --smoke      # one small shard, X-ray only

Runs ``runner.shard.process_shard`` in this process, as a 1-thread worker does (TensorFlow set to
one thread, the job's batch size), on the shards of a dense mock footprint (physics v2, the demo's
zoo). Of the fullest shards, the first is a warm-up (models loaded and graphs traced: paid once per worker, not per
shard); the clock then runs over the next ``--shards`` shards. Each stage is timed by wrapping the
function the production path calls, so nothing is stubbed:

- targets: the mock target draw (``runner.shard.shard_rows``)
- render: the mock survey's cutouts (``MockSource.cutouts``)
- preprocess: cutouts to model inputs (``infer.weigh.prepare``)
- inference: the stacked fold ensembles (``FoldEnsemble.predict``)
- combine: calibration maps and the joint mass (``runner.shard.mass_columns``)
- write: the shard's Parquet files and done marker (``runner.shard.write_shard``)

and "other" is what is left of the wall time. The ratios printed are inference / wall time, and
inference / (wall time - rendering): the share a real job would see, whose archive fetches (network
time, not CPU) take the place of the mock survey's rendering.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

STAGES = ("targets", "render", "preprocess", "inference", "combine", "write")


class StageClock:
    """Seconds and calls per stage, from wrappers around the production functions."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.running = True

    def wrap(self, stage: str, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                result = function(*args, **kwargs)
                # a generator (the mock renderer) works when consumed: consume it on the clock
                return list(result) if inspect.isgenerator(result) else result
            finally:
                if self.running:
                    self.seconds[stage] += time.perf_counter() - start
                    self.calls[stage] += 1

        return timed

    def reset(self):
        self.seconds.clear()
        self.calls.clear()


@contextlib.contextmanager
def timed_stages(clock: StageClock):
    """Wrap each stage's function where the production path looks it up; restore them after."""
    import survey_mass.infer.weigh as weigh
    import survey_mass.runner.shard as shard
    from survey_mass.infer.ensemble import FoldEnsemble
    from survey_mass.mock.source import MockSource

    patches = [
        (shard, "shard_rows", "targets"),
        (MockSource, "cutouts", "render"),
        (weigh, "prepare", "preprocess"),
        (FoldEnsemble, "predict", "inference"),
        (shard, "mass_columns", "combine"),
        (shard, "write_shard", "write"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, stage in patches:
        setattr(owner, name, clock.wrap(stage, getattr(owner, name)))
    try:
        yield clock
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def stage_job(instruments: list[str], url: str, density_scale: float):
    from survey_mass.spec.job import parse_job_spec

    return parse_job_spec(f"""
name = "stages"
instruments = {json.dumps(instruments)}
batch_size = 64
device = "cpu"
[targets]
footprint = {{ kind = "cone", ra = 150.0, dec = 2.0, radius_deg = 3.0 }}
[source]
mock = {{ seed = 42, physics = "v2", density_scale = {density_scale} }}
[output]
url = "{url}"
""")


def measure(instruments: list[str], n_shards: int, density_scale: float) -> dict:
    from survey_mass.runner.shard import process_shard, shard_rows
    from survey_mass.runner.worker_plugin import configure_tensorflow
    from survey_mass.targets.plan import plan_shards
    from survey_mass.zoo.registry import resolve_models

    configure_tensorflow(1)  # as a 1-thread worker
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        spec = stage_job(instruments, str(Path(tmp) / "catalog"), density_scale)
        models = resolve_models(spec.models, spec.instruments)
        # the fullest shards (a large job's shards are full; the cone's edge ones are not)
        sized = sorted(plan_shards(spec)[1], key=lambda s: -len(shard_rows(spec, s)))
        shards = [s for s in sized if len(shard_rows(spec, s))][: n_shards + 1]
        if len(shards) < n_shards + 1:
            raise SystemExit(f"the footprint has {len(shards)} shards with targets; ask fewer")
        clock = StageClock()
        with timed_stages(clock):
            process_shard(spec, shards[0], models, "bench")  # warm-up: loads and traces
            clock.reset()
            rows = 0
            start = time.perf_counter()
            for shard in shards[1 : n_shards + 1]:
                rows += process_shard(spec, shard, models, "bench")["rows"]
            wall = time.perf_counter() - start
    shares = {s: clock.seconds[s] / wall for s in STAGES}
    shares["other"] = 1.0 - sum(shares.values())
    return {
        "instruments": instruments,
        "shards": n_shards,
        "rows": rows,
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall, 1),
        "calls": {s: clock.calls[s] for s in STAGES},
        "share": {k: round(v, 3) for k, v in shares.items()},
        "ms_per_row": {s: round(1e3 * clock.seconds[s] / rows, 2) for s in STAGES},
        "inference_share": round(shares["inference"], 3),
        "inference_share_without_render": round(shares["inference"] / (1.0 - shares["render"]), 3),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=6, help="timed shards after the warm-up")
    parser.add_argument("--instruments", default="xray,sz,optical")
    parser.add_argument("--density-scale", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true", help="one small X-ray shard, seconds")
    args = parser.parse_args(argv)
    instruments = [i.strip() for i in args.instruments.split(",") if i.strip()]
    if args.smoke:
        instruments, args.shards, args.density_scale = ["xray"], 1, 2.0
    result = measure(instruments, args.shards, args.density_scale)
    if min(result["calls"].values()) == 0:
        raise RuntimeError(f"a stage was never timed, so it was not measured: {result['calls']}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
