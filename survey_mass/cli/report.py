"""``survey-mass report``: validation reports of a mass catalog (or an external one) against references.

    survey-mass report CATALOG --against sdss_redmapper,mcxc --out DIR [--radius ARCSEC] [--dz TOL]
    survey-mass report --job jobs/real_catalogs_report.toml
    survey-mass report --realism --out DIR [--physics v2] [--seed N]

--realism measures the mock survey against the real sky (PSZ2, SDSS redMaPPer, DeepPlanck, MCXC,
a real Planck y cutout in ../shared/data or $SURVEY_MASS_SHARED_DATA): realism.html and .json.

CATALOG is a mass catalog folder (written by ``survey-mass run``) or an external catalog name from
catalogs/ (e.g. ``psz2``), so real catalogs can be compared with each other. For a mock run, the
mock_* references (mock_truth, mock_redmapper, mock_wl, mock_psz) are drawn for the run's own
universe and footprint.
"""

from __future__ import annotations

import argparse
import json

from astropy import units as u

from survey_mass.errors import UserError


def _paths(pairs: list[str]) -> dict[str, str]:
    paths = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise UserError(
                f"--local takes NAME=PATH (e.g. --local psz2=data/psz2.csv.gz); got {pair!r}"
            )
        paths[name] = path
    return paths


def _interpretation(catalog: str, n: int) -> list:
    """Input-gradient maps of a few clusters, for mock runs weighed in X-ray."""
    from survey_mass.validate.job import is_mass_catalog

    if n <= 0 or not is_mass_catalog(catalog):
        return []
    from survey_mass.validate.interpret import xray_maps

    return xray_maps(catalog, n)


def _json_summary(result) -> dict:
    """The report's headline numbers per reference and estimate, for schedulers' wrappers."""
    keys = ("n", "bias_dex", "std_dex", "gauss_sigma_dex", "coverage")
    return {
        "report": str(result.html_path),
        "numbers": str(result.json_path),
        "references": {
            name: {
                "n_matched": block["n_matched"],
                "estimates": {
                    est: {k: stats.get(k) for k in keys}
                    for est, stats in block["estimates"].items()
                },
            }
            for name, block in result.numbers["references"].items()
        },
        "exit": 0,
    }


def _realism(args: argparse.Namespace) -> int:
    """``--realism``: the mock survey's realism report (survey_mass.validate.realism)."""
    import os
    from pathlib import Path

    from survey_mass.spec.universe import UniverseSpec
    from survey_mass.validate.realism import build_realism_report

    if not args.out:
        raise UserError("give --realism --out DIR")
    shared = Path(os.environ.get("SURVEY_MASS_SHARED_DATA", "../shared/data"))
    if not shared.is_dir():
        raise UserError(f"real data not found at {shared}: set SURVEY_MASS_SHARED_DATA")
    universe = UniverseSpec(seed=args.seed, physics=args.physics)
    html_path, json_path = build_realism_report(args.out, universe=universe, shared_data=shared)
    if args.json:
        print(json.dumps({"report": str(html_path), "numbers": str(json_path), "exit": 0}))
        return 0
    print(html_path)
    print(json_path)
    return 0


def report(args: argparse.Namespace) -> int:
    if getattr(args, "realism", False):
        return _realism(args)
    from survey_mass.validate.job import (
        load_report_job,
        load_table,
        mock_run_kwargs,
        run_report_job,
    )
    from survey_mass.validate.report import build_report

    paths = _paths(args.local)
    if args.job:
        if args.catalog or args.against:
            raise UserError("give either --job FILE or CATALOG --against NAMES, not both")
        job = load_report_job(args.job)
        updates = {"paths": {**job.paths, **paths}, "network": job.network or args.network}
        if args.out:
            updates["out"] = args.out
        job = job.model_copy(update=updates)
        results = run_report_job(job)
        for result in results:
            print(result.html_path)
        if job.weak_lensing is not None:
            from survey_mass.validate.weak_lensing import headline_lines

            print("\n".join(headline_lines(results[-1].numbers)))
        print(f"{job.out}/index.html")
        return 0
    if not args.catalog or not args.against or not args.out:
        raise UserError("give CATALOG --against NAME[,NAME] --out DIR (or --job FILE)")
    names = [n.strip() for n in args.against.split(",") if n.strip()]
    result = build_report(
        load_table(args.catalog, paths, args.network),
        {
            name: load_table(name, paths, args.network, mock_run_kwargs(args.catalog))
            for name in names
        },
        args.out,
        match_radius=args.radius * u.arcsec,
        dz=args.dz,
        r500_fraction=args.r500_fraction,
        title=args.title or f"{args.catalog} against {', '.join(names)}",
        prediction_name=args.catalog,
        interpretation=_interpretation(args.catalog, args.interpret),
    )
    if args.json:
        print(json.dumps(_json_summary(result)))
        return 0
    for name, block in result.numbers["references"].items():
        joint = block["estimates"].get("logm500")
        line = f"{name}: {block['n_matched']} matched"
        if joint:
            line += f", bias {joint['bias_dex']:+.3f} dex, Gaussian sigma {joint['gauss_sigma_dex']:.3f} dex"
        print(line)
    print(result.html_path)
    print(result.json_path)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="HTML + JSON validation report of a catalog against reference catalogs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "catalog", nargs="?", help="mass catalog folder/URL, or a catalog name (psz2, ...)"
    )
    p.add_argument("--against", help="reference catalog names, comma-separated (see catalogs/)")
    p.add_argument("--out", help="output folder (with --job: overrides the job's out)")
    p.add_argument("--json", action="store_true", help="print one JSON summary of the numbers")
    p.add_argument("--radius", type=float, default=60.0, help="match radius [arcsec] (default 60)")
    p.add_argument(
        "--dz", type=float, help="max |z_ref - z| for a match (default: no redshift test)"
    )
    p.add_argument(
        "--r500-fraction", type=float, help="match radius as a fraction of R500 (needs mass, z)"
    )
    p.add_argument("--title", help="report title")
    p.add_argument(
        "--job",
        help="report job TOML with several comparisons (e.g. jobs/real_catalogs_report.toml)",
    )
    p.add_argument(
        "--local",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="local file for a catalog (repeatable)",
    )
    p.add_argument(
        "--network", action="store_true", help="allow fetching catalogs without a local copy"
    )
    p.add_argument(
        "--interpret",
        type=int,
        default=3,
        metavar="N",
        help="input-gradient maps of the N most massive clusters of a mock run (0: none)",
    )
    p.add_argument(
        "--realism",
        action="store_true",
        help="measure the mock survey against the real sky (needs --out; see above)",
    )
    p.add_argument(
        "--physics", default="v2", choices=("v1", "v2"), help="with --realism: simulator version"
    )
    p.add_argument("--seed", type=int, default=42, help="with --realism: mock universe seed")
    p.set_defaults(func=report)
