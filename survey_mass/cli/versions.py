"""``survey-mass diff OLD NEW`` and ``survey-mass versions OUT``: a job output's catalog versions.

survey-mass versions OUT                 every version: rows, parent, what it was made of
survey-mass versions OUT --prune --keep 2  remove all but the current and the newest others
survey-mass diff OUT/v1 OUT/v2 [--json] [--html DIR]
"""

from __future__ import annotations

import argparse
import json


def diff(args: argparse.Namespace) -> int:
    from survey_mass.catalog.diff import diff_catalogs, diff_text, write_diff_report

    numbers, shifts = diff_catalogs(args.old, args.new)
    if args.html:
        numbers["report"] = str(write_diff_report(numbers, shifts, args.html))
    if args.json:
        print(json.dumps(numbers))
        return 0
    print(diff_text(numbers))
    if args.html:
        print(f"report: {numbers['report']}")
    return 0


def _describe(version) -> str:
    record = version.identity
    state = "current" if version.current else ("complete" if version.complete else "unfinished")
    rows = ""
    if version.complete:
        manifest = json.loads(version.layout.fs.cat_file(version.layout.manifest))
        rows = f", {manifest['rows']} rows, {manifest['quarantined']} quarantined"
    parent = f", updated from {record['parent']}" if record.get("parent") else ""
    models = ", ".join(sorted(record.get("models", {})))
    return f"{version.name}: {state}{rows}{parent}; models {models}; job {record.get('job_hash')}"


def versions(args: argparse.Namespace) -> int:
    from survey_mass.catalog.lease import hold_lease
    from survey_mass.catalog.paths import CatalogLayout
    from survey_mass.catalog.versions import list_versions, prune

    if args.prune:
        with hold_lease(CatalogLayout(args.output)):
            removed = prune(args.output, args.keep)
        print(f"removed {', '.join(removed) if removed else 'nothing'}")
    found = list_versions(args.output)
    if args.json:
        print(json.dumps([{**v.identity, "name": v.name, "current": v.current} for v in found]))
        return 0
    for version in found:
        print(_describe(version))
    if not found:
        print(f"{args.output}: no catalog versions")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "diff",
        help="compare two catalog versions: rows added/removed, mass shifts per instrument",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old", help="the older catalog: a version folder (OUT/v1) or an output")
    p.add_argument("new", help="the newer catalog")
    p.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    p.add_argument("--html", metavar="DIR", help="also write DIR/diff.html with histograms")
    p.set_defaults(func=diff)
    v = subparsers.add_parser(
        "versions",
        help="list (or prune) the catalog versions of a job output",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("output", help="a job's output folder (output.url)")
    v.add_argument("--prune", action="store_true", help="remove old versions (see --keep)")
    v.add_argument("--keep", type=int, default=2, help="versions kept by --prune (default 2)")
    v.add_argument("--json", action="store_true", help="print the versions as JSON")
    v.set_defaults(func=versions)
