"""``survey-mass calibrate --seed S``: fit the calibration maps of the zoo entries a job uses.

    survey-mass calibrate --seed 6160 [--clusters 1500] [--instruments xray,sz,optical]
                          [--model sz=sz-v2] [--mock physics=v2] [--massive 600]
                          [--out out/calibrate]

Weighs a fresh cone of the mock universe (seed S, never a training seed) with the raw ensemble
outputs, fits each entry's map (bias regression, conformal interval scales and informativeness per
redshift bin and estimated-mass quartile; see survey_mass/infer/calibration_map.py) and writes it
into the entry with its sha256 in the manifest. Evaluate on another seed (survey-mass evaluate).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from survey_mass.cli.evaluate import _mock


def calibrate(args: argparse.Namespace) -> int:
    from survey_mass.spec.job import ModelsSpec
    from survey_mass.spec.universe import DEFAULT_PHYSICS
    from survey_mass.validate.calibrate import run_calibration

    instruments = [i.strip() for i in args.instruments.split(",") if i.strip()]
    physics = _mock(args.mock).get("physics", DEFAULT_PHYSICS)
    models = ModelsSpec().for_physics(physics).model_dump()
    for pair in args.model:
        kind, _, entry = pair.partition("=")
        models[kind] = entry
    report = run_calibration(
        args.seed,
        args.clusters,
        instruments,
        models,
        _mock(args.mock),
        Path(args.out),
        massive=args.massive,
    )
    print(json.dumps(report, indent=1))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="fit the zoo entries' calibration maps on fresh mock clusters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--seed", type=int, required=True, help="mock universe seed (not a training one)"
    )
    p.add_argument("--clusters", type=int, default=1500, help="about this many clusters (1500)")
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
        default=0,
        help="also about this many clusters above 10^14.5 at z < 0.4 from a wide cone, weighted "
        "back to the mass function (the massive end measured on hundreds, not a few)",
    )
    p.add_argument("--out", default="out/calibrate", help="folder for the catalog and the fits")
    p.set_defaults(func=calibrate)
