"""``survey-mass verify OUT``: check a catalog against what its run wrote (``--deep``: hashes)."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    from survey_mass.catalog.integrity import verify

    report = verify(args.catalog, deep=args.deep)
    if args.json:
        problems = [{"pixel": p.pixel, "problem": p.what} for p in report.problems]
        print(
            json.dumps(
                {
                    "catalog": args.catalog,
                    "ok": report.ok,
                    "shards": report.shards,
                    "rows": report.rows,
                    "problems": problems,
                    "exit": 0 if report.ok else 1,
                }
            )
        )
        return 0 if report.ok else 1
    print(report.summary())
    for problem in report.problems[: args.max_problems]:
        where = f"Npix={problem.pixel}: " if problem.pixel is not None else ""
        print(f"  {where}{problem.what}")
    if len(report.problems) > args.max_problems:
        print(f"  ... and {len(report.problems) - args.max_problems} more")
    return 0 if report.ok else 1


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify", help="check a catalog's files against its manifest (exit 1 if damaged)"
    )
    p.add_argument("catalog", help="catalog folder (a job's output.url)")
    p.add_argument("--deep", action="store_true", help="also check every file's sha256")
    p.add_argument("--max-problems", type=int, default=20, help="problems to list")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)
