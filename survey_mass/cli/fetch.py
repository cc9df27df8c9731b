"""``survey-mass fetch JOB.toml``: fetch every cutout a job will need into the cache, ahead of the run.

A later ``survey-mass run`` of the same job (same ``[source.real]`` settings, same cache folder)
then asks no archive again. Targets that cannot be had are listed by reason; they do not stop the
warm-up and will be quarantined by the run.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from survey_mass.errors import JobSpecError, UserError
from survey_mass.sources.base import CutoutFailure, Target


@dataclass
class WarmReport:
    """What a warm-up did: cutouts made per instrument, failures, requests that left the process."""

    fetched: dict[str, int] = field(default_factory=dict)
    failures: list[CutoutFailure] = field(default_factory=list)
    requests: int = 0

    def summary(self, max_failures: int = 10) -> str:
        lines = [f"{inst}: {n} cutout(s) ready" for inst, n in self.fetched.items()]
        if self.failures:
            by_reason = Counter((f.instrument, f.reason) for f in self.failures)
            lines.append(f"{len(self.failures)} target(s) failed (they will be quarantined):")
            lines += [f"  {inst} {reason}: {n}" for (inst, reason), n in sorted(by_reason.items())]
            for f in self.failures[:max_failures]:
                lines.append(f"    {f.instrument} {f.target.target_id}: {f.reason} {f.detail}")
            if len(self.failures) > max_failures:
                lines.append(f"    ... and {len(self.failures) - max_failures} more")
        lines.append(f"{self.requests} request(s) sent to the archives")
        return "\n".join(lines)


def warm_cache(
    targets: Iterable[Target],
    instruments: Sequence[str],
    config=None,
    progress: bool = True,
    *,
    source=None,
) -> WarmReport:
    """Make every (target, instrument) cutout once so that the raw archive data is cached.

    ``config`` is a RealSourceConfig (or its dict); ``source`` overrides it with a ready
    RealSource (tests pass one with a fake transport).
    """
    from tqdm.auto import tqdm

    from survey_mass.sources.real import build_real_source

    targets = list(targets)
    src = source if source is not None else build_real_source(config)
    report = WarmReport()
    with tqdm(
        total=len(targets) * len(instruments),
        disable=not progress,
        unit="cutout",
        desc="fetch",
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        for instrument in instruments:
            bar.set_description(f"fetch {instrument}")
            report.fetched[instrument] = 0
            for result in src.cutouts(targets, instrument):
                if isinstance(result, CutoutFailure):
                    report.failures.append(result)
                else:
                    report.fetched[instrument] += 1
                bar.update(1)
                bar.set_postfix(failed=len(report.failures), refresh=False)
    report.requests = sum(
        getattr(f, "requests_made", 0) for f in getattr(src, "_fetchers", {}).values()
    )
    return report


def _real_config(spec):
    from pydantic import ValidationError

    from survey_mass.sources.real import RealSourceConfig

    real = spec.source.real
    if isinstance(real, RealSourceConfig):
        return real
    try:
        return RealSourceConfig.model_validate(
            real if not hasattr(real, "model_dump") else real.model_dump()
        )
    except ValidationError as err:
        problems = "; ".join(
            f"source.real.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()
        )
        raise JobSpecError(f"[source.real] is not valid: {problems}") from err


def job_targets(spec) -> list[Target]:
    """Every target the job's run will weigh, shard by shard (rows it would reject left out)."""
    from survey_mass.runner.shard import shard_rows
    from survey_mass.targets.plan import plan_shards

    targets = []
    for shard in plan_shards(spec)[1]:
        rows = shard_rows(spec, shard)
        good = rows[rows["reject"].isna()]
        targets += [
            Target(r.target_id, float(r.ra), float(r.dec), float(r.z)) for r in good.itertuples()
        ]
    return targets


def run(args: argparse.Namespace) -> int:
    from survey_mass.spec.job import load_job_spec

    spec = load_job_spec(args.spec)
    if spec.source.kind != "real":
        raise UserError(
            f"{args.spec}: its [source] is the mock survey, which has no archive to fetch from; "
            "fetch warms the cache of a job with [source] kind = 'real'"
        )
    instruments = list(args.instrument or spec.instruments)
    targets = job_targets(spec)
    if args.limit is not None:
        targets = targets[: args.limit]
    report = warm_cache(targets, instruments, _real_config(spec), progress=not args.no_progress)
    print(report.summary())
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fetch", help="fetch a job's archive data into the cache ahead of a run"
    )
    p.add_argument("spec", help="job spec TOML whose [source.real] says where and how to fetch")
    p.add_argument(
        "--instrument",
        action="append",
        choices=("xray", "sz", "optical"),
        help="only this instrument (repeatable); default: the job's instruments",
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N targets")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
