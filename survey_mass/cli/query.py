"""``survey-mass query`` and ``survey-mass export``: read a catalog with SQL or a cone search."""

from __future__ import annotations

import argparse

import pandas as pd


def run_query(args: argparse.Namespace) -> int:
    from survey_mass.catalog.query import cone_search, query

    if args.cone:
        ra, dec, radius = args.cone
        result = cone_search(args.catalog, ra, dec, radius)
        df = result.rows
        print(
            f"# cone ({ra}, {dec}, {radius} deg): {len(df)} rows; read "
            f"{result.partitions_read} of {result.partitions_total} partitions"
        )
    else:
        df = query(args.catalog, args.sql or "SELECT * FROM catalog LIMIT 20")
    if args.csv:
        print(df.to_csv(index=False), end="")
    elif df.empty:  # pandas would print "Empty DataFrame"
        print(f"(no rows; columns: {', '.join(map(str, df.columns))})")
    else:
        with pd.option_context("display.max_rows", args.max_rows, "display.width", 200):
            print(df.to_string(index=False))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from survey_mass.catalog.export import export

    path = export(args.catalog, args.dest, args.sql)
    print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("query", help="read-only SQL (DuckDB) or a cone search on a catalog")
    p.add_argument("catalog", help="catalog folder (a job's output.url)")
    p.add_argument("sql", nargs="?", help="one SELECT over the tables 'catalog' and 'quarantine'")
    p.add_argument(
        "--cone",
        nargs=3,
        type=float,
        metavar=("RA", "DEC", "RADIUS"),
        help="cone search in degrees; reads only the partitions it needs",
    )
    p.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--max-rows", type=int, default=60)
    p.set_defaults(func=run_query)

    e = subparsers.add_parser(
        "export",
        help="export a catalog (or a query) with units: FITS, VOTable, ECSV, CSV or Parquet",
    )
    e.add_argument("catalog", help="catalog folder (a job's output.url)")
    e.add_argument(
        "dest",
        help="output file, format by suffix: .fits/.fit (FITS-plus), .vot/.xml, .ecsv, .csv, "
        ".parquet",
    )
    e.add_argument(
        "--sql", default="SELECT * FROM catalog", help="one SELECT; default: the whole catalog"
    )
    e.set_defaults(func=run_export)
