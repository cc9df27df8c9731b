"""A job on Dask: plan the shards, keep a bounded window of them in flight, finalize the catalog.

``process_shard`` (``runner.shard``) is the per-shard work; this module is the thin wiring that
skips shards already done, submits the rest, and writes the metadata last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tqdm.auto import tqdm

from survey_mass.catalog.paths import CatalogLayout
from survey_mass.catalog.writer import done_shards, finalize, is_complete
from survey_mass.errors import UserError
from survey_mass.runner.provenance import job_hash, provenance
from survey_mass.runner.shard import process_shard
from survey_mass.runner.summary import RunSummary, quarantine_reasons
from survey_mass.spec.job import JobSpec
from survey_mass.targets import Shard, plan_shards
from survey_mass.zoo.registry import ModelSet, resolve_models

#: shards in flight: at least this many, or this many per worker thread (workers may join late)
MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD = 8, 4


@dataclass
class JobPlan:
    """Everything a run decides before any worker starts."""

    spec: JobSpec
    layout: CatalogLayout
    models: ModelSet
    job_hash: str
    order: int
    shards: list[Shard]
    done: dict[int, dict]  # pixel -> done marker, of this job's identity

    @property
    def todo(self) -> list[Shard]:
        return [s for s in self.shards if s.pixel not in self.done]


def plan_job(spec: JobSpec) -> JobPlan | None:
    """The run's plan; None when the catalog is already complete."""
    layout = CatalogLayout(spec.output.url)
    models = resolve_models(spec.models, spec.instruments)
    jhash = job_hash(spec, models)
    if is_complete(layout):
        return None
    done = done_shards(layout, jhash)
    order, shards = plan_shards(spec)
    return JobPlan(spec, layout, models, jhash, order, shards, done)


def run_window(client, submit: Callable, shards: Iterable[Shard], on_done: Callable) -> list:
    """Run ``submit(shard)`` futures with a bounded window in flight, topped up as they finish:
    the scheduler and this client hold a few tasks per worker thread, not one per shard of the
    footprint. ``on_done(result)`` sees each finished shard; failures are returned."""
    from distributed import as_completed

    waiting, running = iter(shards), as_completed()
    in_flight, target, asked = 0, MIN_IN_FLIGHT, -1.0

    def top_up() -> None:
        nonlocal in_flight, target, asked
        if time.monotonic() - asked > 1.0:  # workers come and go: ask once a second
            threads = sum(client.nthreads().values())
            target, asked = max(MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD * threads), time.monotonic()
        while in_flight < target and (shard := next(waiting, None)) is not None:
            running.add(submit(shard))
            in_flight += 1

    errors = []
    top_up()
    for future in running:
        in_flight -= 1
        if future.status == "error":
            errors.append((future.key, future.exception()))
        else:
            on_done(future.result())
        future.release()
        top_up()
    return errors


def _register_models(client, plan: JobPlan) -> None:
    from survey_mass.runner.worker_plugin import EnsemblePlugin

    paths = [e.path for e in plan.models.ensembles.values()]
    try:
        client.register_plugin(EnsemblePlugin(paths, plan.spec.cluster.threads_per_worker))
    except Exception as err:  # e.g. Keras safe_mode refusing a member
        raise UserError(
            f"workers could not load the models {sorted(paths)}: {type(err).__name__}: {err}"
        ) from err


def run_shards(plan: JobPlan, client=None, progress: bool = True) -> None:
    """Weigh every shard not yet done on the job's cluster (or ``client``)."""
    from survey_mass.runner.dask_cluster import open_client

    spec, todo = plan.spec, plan.todo
    with open_client(spec.cluster, client) as c:
        _register_models(c, plan)

        def submit(shard: Shard):
            return c.submit(
                process_shard,
                spec,
                shard,
                plan.models,
                plan.job_hash,
                key=f"shard-{shard.order}-{shard.pixel}-{plan.job_hash}",
                retries=2,
                pure=False,
            )

        bar = tqdm(total=len(todo), desc=f"{spec.name}: shards", unit="shard", disable=not progress)

        def on_done(marker: dict) -> None:
            plan.done[marker["pixel"]] = marker
            bar.update(1)

        errors = run_window(c, submit, todo, on_done)
        bar.close()
    if errors:
        raise UserError(
            f"{len(errors)} shard(s) failed, first {errors[0][0]}: {errors[0][1]!r}; "
            "re-run the same command to retry only those shards"
        )


def finalize_job(plan: JobPlan, summary: RunSummary) -> None:
    """Metadata last: provenance and ``_metadata`` over every done shard, then the counts."""
    record = provenance(plan.spec, plan.models, plan.job_hash, plan.order, len(plan.shards))
    finalize(plan.layout, plan.order, sorted(plan.done), plan.spec.instruments, record.model_dump())
    summary.rows = sum(m["rows"] for m in plan.done.values())
    summary.quarantined = sum(m["quarantined"] for m in plan.done.values())
    summary.reasons = quarantine_reasons(plan.layout)


def run_job(spec: JobSpec, client=None, progress: bool = True) -> RunSummary:
    """Run (or resume) a job; ``client`` is a distributed Client, else the job's cluster is started."""
    start = time.perf_counter()
    summary = RunSummary(url=spec.output.url)
    plan = plan_job(spec)
    if plan is None:
        summary.already_complete = True
        return summary
    summary.shards, summary.shards_run = len(plan.shards), len(plan.todo)
    if plan.todo:
        run_shards(plan, client, progress)
    finalize_job(plan, summary)
    summary.seconds = time.perf_counter() - start
    return summary
