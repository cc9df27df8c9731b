"""``survey-mass evaluate --seed S``: the zoo on fresh mock clusters, tables per z bin and quartile.

    survey-mass evaluate --seed 5150 [--clusters 600] [--instruments xray,sz,optical]
                         [--massive 300] [--mock physics=v2] [--out out/evaluate]
                         [--results benchmarks/RESULTS.md]

The seed must be one no zoo entry was trained on (refused otherwise). The tables (bias, std,
68%/95% coverage, slope of estimate on truth; overall, per redshift bin, per quartile of the
estimated mass; the massive end) go to OUT/evaluation.{md,json} and, with --results, into that
file between markers.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from survey_mass.errors import UserError


def _mock(pairs: list[str]) -> dict:
    """``--mock key=value`` pairs as UniverseSpec fields (numbers where they parse)."""
    fields = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--mock takes KEY=VALUE (e.g. --mock physics=v2); got {pair!r}")
        try:
            fields[key] = float(value) if "." in value else int(value)
        except ValueError:
            fields[key] = value
    return fields


def evaluate(args: argparse.Namespace) -> int:
    from survey_mass.spec.job import ModelsSpec
    from survey_mass.spec.universe import DEFAULT_PHYSICS
    from survey_mass.validate.evaluate import markdown, run_evaluation, write_results

    instruments = [i.strip() for i in args.instruments.split(",") if i.strip()]
    physics = _mock(args.mock).get("physics", DEFAULT_PHYSICS)
    models = ModelsSpec().for_physics(physics).model_dump()
    for pair in args.model:
        kind, _, entry = pair.partition("=")
        models[kind] = entry
    words = ["--seed", str(args.seed), "--clusters", str(args.clusters)]
    words += ["--instruments", ",".join(instruments)]
    words += [w for pair in args.model for w in ("--model", pair)]
    words += [w for pair in args.mock for w in ("--mock", pair)]
    words += ["--massive", str(args.massive)]
    command = "survey-mass evaluate " + shlex.join(words)
    numbers = run_evaluation(
        args.seed,
        args.clusters,
        instruments,
        models,
        _mock(args.mock),
        Path(args.out),
        command,
        massive=args.massive,
    )
    text = markdown(numbers)
    print(text)
    if args.results:
        write_results(text, Path(args.results), physics)
        print(f"written into {args.results}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="weigh fresh mock clusters (a seed never trained on) and tabulate bias and coverage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--seed", type=int, required=True, help="mock universe seed (not a training one)"
    )
    p.add_argument("--clusters", type=int, default=600, help="about this many clusters (600)")
    p.add_argument("--instruments", default="xray,sz,optical", help="comma-separated instruments")
    p.add_argument(
        "--model", action="append", default=[], metavar="KIND=ENTRY", help="e.g. sz=sz-v2"
    )
    p.add_argument(
        "--mock", action="append", default=[], metavar="KEY=VALUE", help="universe field"
    )
    p.add_argument(
        "--massive",
        type=int,
        default=300,
        help="also weigh ~N clusters above 10^14.5 at z < 0.4 from a wide cone (0: none)",
    )
    p.add_argument("--out", default="out/evaluate", help="folder for the catalog and tables")
    p.add_argument("--results", help="markdown file to write the tables into (between markers)")
    p.set_defaults(func=evaluate)
