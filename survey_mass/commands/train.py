"""``survey-mass train SPEC.toml``: train a fold ensemble on the mock survey into the zoo."""

from __future__ import annotations

import argparse
import json

from survey_mass.train.spec import load_train_spec

BUILDERS = {"xray": ("survey_mass.models.xray", "build_xray_cnn")}


def run(args: argparse.Namespace) -> int:
    import importlib

    from survey_mass.preprocess import TRAINING_PREPROCESSING
    from survey_mass.train.data import training_clusters, training_inputs
    from survey_mass.train.ensemble import train_fold_ensemble

    spec = load_train_spec(args.spec)
    if spec.instrument not in BUILDERS or spec.instrument not in TRAINING_PREPROCESSING:
        from survey_mass.errors import UserError

        raise UserError(f"training for instrument {spec.instrument!r} is not available yet")
    module, name = BUILDERS[spec.instrument]
    build = getattr(importlib.import_module(module), name)
    truth = training_clusters(spec.universe, spec.n_clusters)
    images, truth = training_inputs(spec.universe, truth, spec.instrument)
    out = train_fold_ensemble(spec, images, truth, build, TRAINING_PREPROCESSING[spec.instrument])
    manifest = json.loads((out / "manifest.json").read_text())
    held = manifest["held_out"]
    print(
        f"{spec.ensemble}: {spec.folds} folds in {out}; held-out bias {held['bias']:+.3f} dex, "
        f"scatter {held['scatter']:.3f} dex, MAE {held['mae']:.3f} dex over {held['n']} clusters"
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a fold ensemble on the mock survey")
    p.add_argument(
        "spec", help="training spec TOML with a [train] table (e.g. jobs/train_xray.toml)"
    )
    p.set_defaults(func=run)
