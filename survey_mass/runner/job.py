"""A job on Dask: plan the shards, keep a bounded window of them in flight, finalize the catalog.

``process_shard`` (``runner.shard``) is the per-shard work; this module is the thin wiring that
holds the output's lease, picks the catalog version to write (``runner.versioning``), checks what
earlier runs left (a damaged shard is recomputed, never trusted), submits the rest, writes the
metadata last and then switches the output to the new version.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from tqdm.auto import tqdm

from survey_mass.catalog.integrity import damaged_markers, verify
from survey_mass.catalog.lease import Lease, hold_lease
from survey_mass.catalog.margin import build_margin
from survey_mass.catalog.paths import CatalogLayout, current_version
from survey_mass.catalog.versions import commit_version
from survey_mass.catalog.writer import done_shards, finalize, is_complete, read_marker
from survey_mass.errors import UserError
from survey_mass.runner.provenance import identity_record, job_hash, provenance
from survey_mass.runner.shard import ParentShard, process_shard
from survey_mass.runner.summary import RunSummary, quarantine_reasons
from survey_mass.runner.versioning import VersionChoice, choose_version, current
from survey_mass.runner.window import run_window
from survey_mass.spec.job import JobSpec
from survey_mass.targets import Shard, plan_shards
from survey_mass.targets.fingerprint import input_fingerprint
from survey_mass.zoo.registry import ModelSet, refuse_other_physics, resolve_models


@dataclass
class JobPlan:
    """Everything a run decides before any worker starts."""

    spec: JobSpec
    version: VersionChoice
    models: ModelSet
    job_hash: str
    order: int
    shards: list[Shard]
    done: set[int]  # pixels of the shards done (their markers stay on disk until finalize)
    lease: Lease
    repaired: list[int]  # shards whose files were damaged: recomputed by this run

    @property
    def layout(self) -> CatalogLayout:
        return self.version.layout

    @property
    def todo(self) -> list[Shard]:
        return [s for s in self.shards if s.pixel not in self.done]

    def parent_of(self, shard: Shard) -> ParentShard | None:
        """The parent version's shard if the same recipe made it (then its rows are reusable);
        its marker is read when the shard is submitted, not held for the run."""
        parent = self.version.parent
        marker = read_marker(parent, shard.pixel) if parent is not None else None
        if marker is None or marker.get("job_hash") != self.job_hash:
            return None
        if marker.get("order") != shard.order:
            return None
        carry = marker.get("inputs") == shard.digest
        return ParentShard(self.version.parent.url, marker, carry)


#: thread-seconds per target and instrument in steady state (benchmarks/RESULTS.md, 2 CPU cores)
SECONDS_PER_TARGET = 0.04


def estimate(plan: JobPlan) -> str:
    """The plan's size for a person: shards, targets (estimated for a footprint) and hours."""
    spec, todo = plan.spec, plan.todo
    if spec.targets.catalog is None:
        from survey_mass.pixel_math import SKY_DEG2
        from survey_mass.sources import target_drawer

        pixel_deg2 = SKY_DEG2 / (12 * 4**plan.order)
        area = min(spec.targets.footprint.area_deg2(), len(todo) * pixel_deg2)
        targets = area * target_drawer(spec).targets_per_deg2()
    else:
        targets = sum(len(s.rows) for s in todo if s.rows is not None)
    threads = spec.cluster.n_workers * spec.cluster.threads_per_worker
    hours = targets * len(spec.instruments) * SECONDS_PER_TARGET / threads / 3600
    return (
        f"{len(todo)} shards to run, ~{targets:,.0f} targets, roughly {hours:.1f} h on "
        f"{threads} worker thread(s)"
    )


class JobInterrupted(UserError):
    """Ctrl-C: the run stopped; what it finished stays done and a re-run resumes."""


def _resumable(layout: CatalogLayout, jhash: str, deep: bool = False) -> tuple[set[int], list[int]]:
    """Shards done worth keeping, and those to recompute because their files are damaged.

    A finished catalog is verified, not trusted: if any file differs from what its run wrote,
    ``_metadata`` goes (readers then see an unfinished catalog) and the damaged shards lose
    their markers, so this run recomputes them and finalizes again (which rebuilds the margin
    cache). ``deep`` hashes every file, as ``verify --deep`` does, instead of checking sizes.
    """
    done = done_shards(layout, jhash)
    complete = is_complete(layout)
    # a finished catalog's files are hashed once, by verify, against its manifest
    damaged = set(damaged_markers(layout, done, deep and not complete))
    if complete:
        report = verify(layout.url, deep=deep)
        damaged |= set(report.damaged_shards) & set(done)
        if not report.ok:
            layout.fs.rm(layout.metadata)
    for pixel in sorted(damaged):
        layout.fs.rm(layout.done_marker(pixel))
        del done[pixel]
    return set(done), sorted(damaged)


def plan_job(
    spec: JobSpec, models: ModelSet, lease: Lease, update: bool = False, deep: bool = False
) -> JobPlan | None:
    """The run's plan; None when the current version is of these very inputs, complete and
    intact (``deep``: every file's hash checked). ``update`` lets a changed job write a new
    version (see ``runner.versioning``)."""
    versions, latest = current(spec.output.url)
    order, shards = plan_shards(spec, latest.identity.get("order") if latest else None)
    jhash = job_hash(spec, models)
    record = identity_record(spec, models, jhash, input_fingerprint(spec, shards), order, None)
    version = choose_version(
        spec.output.url, record, update or spec.mode == "update", lease.run_id, versions, latest
    )
    done, repaired = _resumable(version.layout, jhash, deep)
    if is_complete(version.layout):
        if current_version(spec.output.url) != version.name:
            commit_version(version.layout, lease.run_id)  # finished, not yet switched to
        return None
    return JobPlan(spec, version, models, jhash, order, shards, done, lease, repaired)


@contextlib.contextmanager
def ctrl_c_sets(stop: threading.Event):
    """Ctrl-C sets ``stop`` instead of raising inside whatever Dask call is running (which can
    leave the client's event loop logging tracebacks); only in the main thread, as signals are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _register_models(client, plan: JobPlan) -> None:
    from survey_mass.runner.worker_plugin import EnsemblePlugin

    paths = [e.path for e in plan.models.ensembles.values()]
    try:
        client.register_plugin(EnsemblePlugin(paths, plan.spec.cluster.threads_per_worker))
    except Exception as err:  # e.g. Keras safe_mode refusing a member
        raise UserError(
            f"workers could not load the models {sorted(paths)}: {type(err).__name__}: {err}"
        ) from err


def _same(value):
    return value


def run_shards(plan: JobPlan, client, progress: bool = True) -> None:
    """Weigh every shard not yet done on the job's cluster."""
    spec = plan.spec
    _register_models(client, plan)
    # the spec and model set travel once, as two small tasks every shard depends on, not inside
    # each shard's task (thousands of copies held by the scheduler and the client); as tasks,
    # not scattered data, so a worker lost with them is recomputed from them
    spec_f = client.submit(_same, spec, key=f"spec-{plan.job_hash}", pure=False)
    models_f = client.submit(_same, plan.models, key=f"models-{plan.job_hash}", pure=False)

    def submit(shard: Shard):
        return client.submit(
            process_shard,
            spec_f,
            shard,
            models_f,
            plan.job_hash,
            plan.lease.run_id,
            plan.layout.url,
            plan.parent_of(shard),
            key=f"shard-{shard.order}-{shard.pixel}-{plan.job_hash}",
            retries=2,
            pure=False,
        )

    bar = tqdm(
        total=len(plan.todo), desc=f"{spec.name}: shards", unit="shard", disable=not progress
    )

    def on_done(marker: dict) -> None:
        plan.done.add(marker["pixel"])
        bar.update(1)

    stop = threading.Event()
    try:
        with ctrl_c_sets(stop):
            errors = run_window(client, submit, plan.todo, on_done, stop)
    except KeyboardInterrupt:
        raise JobInterrupted(
            f"interrupted after {len(plan.done)}/{len(plan.shards)} shards; "
            "re-run the same command to resume"
        ) from None
    finally:
        bar.close()
    if errors:
        raise UserError(failure_report(plan, errors))


def failure_report(plan: JobPlan, errors: list) -> str:
    """One line per failed shard for the console; full tracebacks go to the run's log file."""
    log = plan.layout.run_log(plan.lease.run_id)
    text = "".join(f"--- {key}\n" + "".join(traceback.format_exception(err)) for key, err in errors)
    try:
        plan.layout.fs.makedirs(log.rsplit("/", 1)[0], exist_ok=True)
        plan.layout.fs.pipe_file(log, text.encode())
    except OSError:  # the output itself is full or read-only: keep the log on this machine
        if plan.layout.fs.exists(log):
            plan.layout.fs.rm(log)
        fd, log = tempfile.mkstemp(prefix=f"survey-mass-{plan.lease.run_id}-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    lines = [f"{len(errors)} shard(s) failed (tracebacks in {log}):"]
    lines += [f"  {key}: {type(err).__name__}: {err}" for key, err in errors[:20]]
    if len(errors) > 20:
        lines.append(f"  ... and {len(errors) - 20} more")
    lines.append("re-run the same command to retry only those shards")
    return "\n".join(lines)


def finalize_job(plan: JobPlan, summary: RunSummary, client) -> None:
    """Metadata last: provenance, HATS files, the margin cache and ``_metadata``; the counts."""
    record = provenance(
        plan.spec, plan.models, plan.version.record, plan.version.name, len(plan.shards)
    )
    tally = finalize(
        plan.layout,
        plan.order,
        plan.done,
        plan.spec.instruments,
        record.model_dump(),
        plan.lease.run_id,
        plan.lease.stale_runs,
        margin=lambda: build_margin(
            plan.layout, client, plan.spec.output.margin_arcsec, plan.lease.run_id
        ),
    )
    commit_version(plan.layout, plan.lease.run_id)
    summary.rows, summary.quarantined = tally.rows, tally.quarantined
    summary.weighed, summary.carried = tally.weighed, tally.carried
    summary.reasons = quarantine_reasons(plan.layout)


def run_job(
    spec: JobSpec,
    client=None,
    progress: bool = True,
    wait: bool = False,
    confirm: Callable[[JobPlan], None] | None = None,
    update: bool = False,
    deep: bool = False,
) -> RunSummary:
    """Run (or resume) a job; ``client`` is a distributed Client, else the job's cluster is started.

    ``wait`` waits for another run holding the output instead of refusing; ``confirm(plan)`` may
    refuse a plan (the CLI asks for ``--yes`` on large jobs) before any shard runs; ``update``
    writes a new catalog version when the job's inputs, spec or models changed; ``deep`` hashes
    every file written before trusting it (what ``verify --deep`` finds, it repairs).
    """
    start = time.perf_counter()
    summary = RunSummary(url=spec.output.url)
    models = resolve_models(spec.models, spec.instruments)  # refused before the output is touched
    if spec.source.kind == "mock" and spec.models.calibrated:
        refuse_other_physics(models, spec.source.mock.physics)
    with hold_lease(CatalogLayout(spec.output.url), wait) as lease:
        plan = plan_job(spec, models, lease, update, deep)
        if plan is None:
            summary.already_complete = True
            layout = CatalogLayout(spec.output.url)
            summary.version = layout.root.rsplit("/", 1)[-1]
            totals = json.loads(layout.fs.cat_file(layout.manifest))
            summary.rows, summary.quarantined = totals["rows"], totals["quarantined"]
            summary.shards = len(totals["shards"])
            return summary
        if confirm is not None:
            confirm(plan)
        summary.shards, summary.shards_run = len(plan.shards), len(plan.todo)
        summary.repaired = len(plan.repaired)
        summary.version, summary.parent = plan.version.name, plan.version.record.get("parent")
        from survey_mass.runner.dask_cluster import open_client

        with open_client(spec.cluster, client) as c:
            if plan.todo:
                run_shards(plan, c, progress)
            finalize_job(plan, summary, c)
    summary.seconds = time.perf_counter() - start
    return summary
