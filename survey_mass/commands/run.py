"""``survey-mass run JOB.toml``: weigh every target of a job into a Parquet mass catalog."""

from __future__ import annotations

import argparse

from survey_mass.config import load_job_spec


def run(args: argparse.Namespace) -> int:
    from survey_mass.pipeline import run_job

    spec = load_job_spec(args.job)
    if args.cluster:
        spec.cluster.kind = args.cluster if "://" not in args.cluster else "address"
        if "://" in args.cluster:
            spec.cluster.address = args.cluster
    if args.output:
        spec.output.url = args.output
    summary = run_job(spec, progress=not args.quiet)
    print(summary.text())
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run a job spec into a mass catalog (resumes if interrupted)"
    )
    p.add_argument("job", help="job spec TOML, e.g. jobs/demo.toml")
    p.add_argument(
        "--cluster", help="local | local-cuda | slurm | kubernetes | tcp://scheduler:8786"
    )
    p.add_argument("--output", help="override output.url")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
