"""``survey-mass run JOB.toml``: weigh every target of a job into a mass catalog."""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from survey_mass.errors import JobSpecError, UserError
from survey_mass.spec.job import JobSpec, format_validation_error, load_job_spec

CLUSTER_KINDS = ("local", "local-cuda", "slurm", "kubernetes")


def apply_overrides(
    spec: JobSpec, cluster: str | None, output: str | None, no_dashboard: bool = False
) -> JobSpec:
    """The job with command-line overrides, validated again like the file (allow-lists included).

    ``cluster`` is a kind or a scheduler address (``tcp://host:8786``, ``tls://...``).
    """
    data = spec.model_dump(mode="json")
    if cluster:
        if "://" in cluster:
            data["cluster"].update(kind="address", address=cluster)
        elif cluster in CLUSTER_KINDS:
            data["cluster"]["kind"] = cluster
        else:
            raise JobSpecError(
                f"--cluster {cluster!r}: give one of {', '.join(CLUSTER_KINDS)} or a scheduler "
                "address such as tcp://127.0.0.1:8786"
            )
    if output:
        data["output"]["url"] = output
    if no_dashboard:
        data["cluster"]["dashboard"] = False
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        raise JobSpecError(format_validation_error(err, "command line")) from err


def confirm_large(yes: bool):
    """A check that refuses a plan of more than ``confirm_above_shards`` shards unless ``yes``."""

    def confirm(plan) -> None:
        from survey_mass.runner.job import estimate

        if len(plan.todo) <= plan.spec.confirm_above_shards:
            return
        size = estimate(plan)
        if not yes:
            raise UserError(
                f"{plan.spec.name}: a large job ({size}); pass --yes to run it, or narrow "
                "targets.footprint"
            )
        print(f"{plan.spec.name}: {size}", file=sys.stderr)

    return confirm


def run(args: argparse.Namespace) -> int:
    from survey_mass.runner.job import JobInterrupted, run_job

    spec = apply_overrides(load_job_spec(args.job), args.cluster, args.output, args.no_dashboard)
    try:
        summary = run_job(
            spec,
            progress=not (args.quiet or args.json),
            wait=args.wait,
            confirm=confirm_large(args.yes),
            update=args.update,
            deep=args.deep,
        )
    except (KeyboardInterrupt, JobInterrupted) as err:
        message = str(err) or "interrupted; re-run the same command to resume"
        print(f"survey-mass run: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"status": "interrupted", "error": message, "exit": 130}))
        return 130
    except UserError as err:
        if args.json:  # schedulers read stdout; the one-line error still goes to stderr
            print(json.dumps({"status": "error", "error": str(err), "exit": 2}))
        raise
    if args.json:
        print(json.dumps({**summary.as_dict(), "exit": 0}))
        return 0
    print(summary.text())
    if spec.report is not None:
        print(validation(spec))
    return 0


def validation(spec: JobSpec) -> str:
    """The job's ``[report]``: the per-instrument table, the report's path, what to try next."""
    from survey_mass.validate.after_run import report_after_run, summary_table

    result = report_after_run(spec)
    url = spec.output.url
    return "\n".join(
        [
            summary_table(spec, result),
            f"report: {result.html_path}",
            "next:",
            f'  survey-mass query {url} "SELECT target_id, z, logm500, logm500_sigma FROM catalog '
            'ORDER BY logm500 DESC LIMIT 5"',
            f"  survey-mass query {url} --cone {_centre(spec)} 0.5",
            f"  survey-mass export {url} {spec.name}.fits",
            f"  survey-mass verify {url} --deep",
        ]
    )


def _centre(spec: JobSpec) -> str:
    footprint = spec.targets.footprint
    if footprint is None:
        return "RA DEC"
    ra, dec, _ = footprint._covering_cone()
    return f"{ra:g} {dec:g}"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run a job spec into a mass catalog (resumes if interrupted)"
    )
    p.add_argument("job", help="job spec TOML, e.g. jobs/demo.toml")
    p.add_argument(
        "--cluster",
        help="where it runs: local | local-cuda | slurm | kubernetes | tcp://scheduler:8786",
    )
    p.add_argument("--output", help="override output.url")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--json", action="store_true", help="print one JSON summary (for cron, Slurm, Airflow)"
    )
    p.add_argument("--no-dashboard", action="store_true", help="do not serve the Dask dashboard")
    p.add_argument(
        "--wait", action="store_true", help="wait for another run writing the output to finish"
    )
    p.add_argument(
        "--yes", action="store_true", help="run a job above its confirm_above_shards size"
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="if the inputs, spec or models changed: write a new catalog version, weighing only "
        "new or changed targets (default: refuse, saying what changed)",
    )
    p.add_argument(
        "--deep",
        action="store_true",
        help="hash every file already written before trusting it (repairs what verify --deep "
        "finds; reads the whole catalog)",
    )
    p.set_defaults(func=run)
