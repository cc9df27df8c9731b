"""``survey-mass zoo``: list and verify model ensembles, recalibrate their sigmas from their fold
records, import the published DeepPlanck models, weigh the real Planck cutout."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_list(args: argparse.Namespace) -> int:
    from survey_mass.zoo.manifest import ModelIntegrityError, verify_manifest
    from survey_mass.zoo.registry import SHIPPED_ZOO

    folders = [Path(args.zoo)] if args.zoo else []
    folders.append(SHIPPED_ZOO)
    for folder in folders:
        for entry in sorted(p for p in folder.glob("*") if (p / "manifest.json").is_file()):
            try:
                m = verify_manifest(entry)
            except ModelIntegrityError as err:
                print(f"{entry.name:16s} REFUSED: {err}")
                continue
            held = m.get("held_out", {})
            held = held.get("joint", held)  # a joint entry's held-out block compares estimators
            quality = f"held-out scatter {held['scatter']:.3f} dex" if "scatter" in held else ""
            print(
                f"{m['ensemble']:16s} {m['instrument']:8s} {len(m['members'])} members  "
                f"{m.get('preprocessing', '')}  {quality}  ({entry})"
            )
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from survey_mass.train.evaluate import calibrate_entry
    from survey_mass.zoo.registry import resolve_entry

    for name in args.entries:
        path = resolve_entry(name, args.zoo)
        cal = calibrate_entry(path)
        groups = cal.get("z_bins") or [cal]
        for g in groups:
            where = f"z in {tuple(g['z_bin'])}" if g.get("z_bin") else "all z"
            print(
                f"{name} ({where}): 95% half-width {g['interval_95']:.2f} sigma; test-fold "
                f"coverage 68%: {100 * g['coverage_68']:.1f}%, 95%: {100 * g['coverage_95']:.1f}% "
                f"of {g['n_test']}"
            )
    return 0


def run_deepplanck(args: argparse.Namespace) -> int:
    from survey_mass.models.deepplanck import DeepPlanckEnsemble

    ensemble = DeepPlanckEnsemble.from_published(args.source)
    dest = ensemble.save_as_zoo_entry(args.out)
    print(f'deepplanck zoo entry written to {dest}; use it with [models] sz = "{dest}"')
    return 0


def run_real_cutout(args: argparse.Namespace) -> int:
    import json

    from survey_mass.errors import UserError
    from survey_mass.models.deepplanck import default_source_dir
    from survey_mass.validate.real_cutout import weigh_real_planck_cutout

    source = Path(args.source) if args.source else default_source_dir()
    if not Path(source, "DeepPlanck.csv").is_file():
        raise UserError(
            f"{source}: no DeepPlanck.csv with the real Planck cutout; pass --source DIR "
            "(the folder of PSZ2G359.07-32.12.fits and DeepPlanck.csv)"
        )
    print(json.dumps(weigh_real_planck_cutout(source, args.model), indent=1))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("zoo", help="list, verify and import model ensembles")
    sub = p.add_subparsers(dest="zoo_command", required=True)
    ls = sub.add_parser("list", help="every ensemble with its checks and held-out quality")
    ls.add_argument("--zoo", help="an extra zoo folder to list")
    ls.set_defaults(func=run_list)
    cal = sub.add_parser(
        "calibrate",
        help="recalibrate sigmas and 95%% intervals from the entries' validation folds, and "
        "measure their coverage on the test folds (no retraining)",
    )
    cal.add_argument("entries", nargs="+", help="zoo names or folders, e.g. xray-v1 sz-v1")
    cal.add_argument("--zoo", help="an extra zoo folder to look in")
    cal.set_defaults(func=run_calibrate)
    dp = sub.add_parser("deepplanck", help="convert the published DeepPlanck SZ weights (HDF5)")
    dp.add_argument(
        "--source", help="folder with bestmodel-{1..4}.h5 (default ../shared/data/deepplanck)"
    )
    dp.add_argument("--out", default="zoo/deepplanck", help="zoo folder to write")
    dp.set_defaults(func=run_deepplanck)
    rc = sub.add_parser(
        "real-cutout",
        help="an SZ entry on the real Planck y cutout, beside its PSZ2 MSZ and DeepPlanck's mass",
    )
    rc.add_argument("--model", default="sz-v2", help="SZ zoo entry (sz-v2)")
    rc.add_argument("--source", help="folder of the cutout (default ../shared/data/deepplanck)")
    rc.set_defaults(func=run_real_cutout)
