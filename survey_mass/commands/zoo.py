"""``survey-mass zoo``: list and verify model ensembles; import the published DeepPlanck models."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_list(args: argparse.Namespace) -> int:
    from survey_mass.infer.ensemble import SHIPPED_ZOO
    from survey_mass.models.manifest import ModelIntegrityError, verify_manifest

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
            quality = f"held-out scatter {held['scatter']:.3f} dex" if held else ""
            print(
                f"{m['ensemble']:16s} {m['instrument']:8s} {len(m['members'])} members  "
                f"{m.get('preprocessing', '')}  {quality}  ({entry})"
            )
    return 0


def run_deepplanck(args: argparse.Namespace) -> int:
    from survey_mass.models.deepplanck import DeepPlanckEnsemble

    ensemble = DeepPlanckEnsemble.from_published(args.source)
    dest = ensemble.save_as_zoo_entry(args.out)
    print(f'deepplanck zoo entry written to {dest}; use it with [models] sz = "{dest}"')
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("zoo", help="list, verify and import model ensembles")
    sub = p.add_subparsers(dest="zoo_command", required=True)
    ls = sub.add_parser("list", help="every ensemble with its checks and held-out quality")
    ls.add_argument("--zoo", help="an extra zoo folder to list")
    ls.set_defaults(func=run_list)
    dp = sub.add_parser("deepplanck", help="convert the published DeepPlanck SZ weights (HDF5)")
    dp.add_argument(
        "--source", help="folder with bestmodel-{1..4}.h5 (default ../shared/data/deepplanck)"
    )
    dp.add_argument("--out", default="zoo/deepplanck", help="zoo folder to write")
    dp.set_defaults(func=run_deepplanck)
