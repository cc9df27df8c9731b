"""``survey-mass simulate``: write a mock survey to disk: truth, mock external catalogs, cutouts.

Output folder:
  truth.parquet         every mock cluster of the footprint with its hidden state
  redmapper.parquet, weak_lensing.parquet, psz2.parquet   mock external catalogs
  cutouts/<instrument>/<target_id>.fits                   the first ``--n-cutouts`` clusters
  summary.json          seed, footprint, universe spec and row counts
Tables stream to Parquet one base HEALPix pixel at a time (no whole-survey array in memory); the
column units travel in each file's schema metadata under ``units`` (JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from survey_mass.constants import INSTRUMENTS
from survey_mass.errors import UserError
from survey_mass.spec.footprint import ConeFootprint
from survey_mass.spec.universe import UniverseSpec


def _parse_instruments(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in INSTRUMENTS]
    if unknown or not chosen:
        raise UserError(
            f"--instruments {text!r}: unknown {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(INSTRUMENTS)}"
        )
    return chosen


def run(args: argparse.Namespace) -> int:
    from survey_mass.mock.survey import simulate

    try:
        footprint = ConeFootprint(
            ra=args.footprint_cone[0] % 360.0,
            dec=args.footprint_cone[1],
            radius_deg=args.footprint_cone[2],
        )
    except ValidationError as err:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in err.errors())
        raise UserError(
            f"--footprint-cone RA DEC RADIUS is not a valid cone ({problems})"
        ) from None
    if args.n_max is not None and args.n_max < 1:
        raise UserError(f"--n-max must be a positive number of clusters, not {args.n_max}")
    if args.n_cutouts < 0:
        raise UserError(f"--n-cutouts must be 0 or more, not {args.n_cutouts}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UserError(f"--out {out} is not empty; choose a new folder or pass --overwrite")
    summary = simulate(
        UniverseSpec(seed=args.seed),
        footprint,
        out,
        _parse_instruments(args.instruments),
        args.n_max,
        args.n_cutouts,
        progress=not args.quiet,
    )
    rows = summary["rows"]
    print(
        f"mock survey (seed {args.seed}) in {out}: {rows['truth']} clusters, "
        f"{rows['redmapper']} redMaPPer, {rows['weak_lensing']} weak-lensing, "
        f"{rows['psz2']} PSZ2 rows; cutouts {summary['cutouts']}"
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="write a mock survey: truth table, mock external catalogs, sample cutouts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--footprint-cone",
        nargs=3,
        type=float,
        required=True,
        metavar=("RA", "DEC", "RADIUS"),
        help="cone footprint centre and radius [deg]",
    )
    p.add_argument("--seed", type=int, default=42, help="universe seed (same seed, same survey)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--instruments",
        default=",".join(INSTRUMENTS),
        help="comma-separated instruments to render cutouts for (default: all)",
    )
    p.add_argument(
        "--n-max",
        type=int,
        default=None,
        help="stop after this many clusters (in HEALPix pixel order)",
    )
    p.add_argument("--n-cutouts", type=int, default=3, help="FITS cutouts per instrument")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
