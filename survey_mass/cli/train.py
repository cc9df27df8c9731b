"""``survey-mass train SPEC.toml``: train an ensemble on the mock survey into the zoo.

X-ray trains one fold ensemble; SZ one per redshift bin (best of N trainings, ``[sz]`` table);
optical the two-step model (``[optical]`` table); a ``[joint]`` spec fits the joint model that
combines the shipped ensembles (``survey_mass.train.joint``). Every ensemble's run ends with the
held-out metrics of the CNN against its summary-statistic baseline, per redshift bin, printed and
saved as the entry's ``metrics.json``. ``--evaluate-only`` recomputes them for an entry already trained.
"""

from __future__ import annotations

import argparse
import json

from survey_mass.train.spec import load_train_spec

BUILDERS = {"xray": ("survey_mass.models.xray", "build_xray_cnn")}
#: instrument -> (module, trainer function, settings class, job-file table)
TRAINERS = {
    "sz": ("survey_mass.train.sz", "train_sz", "SZSettings", "sz"),
    "optical": ("survey_mass.train.optical", "train_optical", "OpticalSettings", "optical"),
}


def _train_xray(spec) -> tuple:
    import importlib

    from survey_mass.preprocess import TRAINING_PREPROCESSING
    from survey_mass.train.data import training_clusters, training_inputs
    from survey_mass.train.ensemble import train_fold_ensemble
    from survey_mass.train.evaluate import evaluate_entry

    module, name = BUILDERS[spec.instrument]
    build = getattr(importlib.import_module(module), name)
    truth = training_clusters(spec.universe, spec.n_clusters)
    images, truth = training_inputs(spec.universe, truth, spec.instrument)
    out = train_fold_ensemble(spec, images, truth, build, TRAINING_PREPROCESSING[spec.instrument])
    return out, evaluate_entry(out)  # metrics.json after the manifest: the fold ensemble's format


def run(args: argparse.Namespace) -> int:
    import importlib
    from pathlib import Path

    from survey_mass.errors import UserError
    from survey_mass.train.assemble import load_settings
    from survey_mass.train.evaluate import evaluate_entry, format_metrics
    from survey_mass.train.joint import format_comparison, load_joint_spec, train_joint

    joint = load_joint_spec(args.spec) if Path(args.spec).is_file() else None
    if joint is not None:
        out, comparison = train_joint(joint)
        print(f"{joint.ensemble}: written to {out}")
        print(format_comparison(comparison))
        return 0
    spec = load_train_spec(args.spec)
    if args.evaluate_only:
        out = Path(spec.out)
        if not (out / "manifest.json").is_file():
            raise UserError(f"{out} holds no finished zoo entry to evaluate; train it first")
        metrics = evaluate_entry(out)
    elif spec.instrument in BUILDERS:
        out, metrics = _train_xray(spec)
    elif spec.instrument in TRAINERS:
        module, function, settings_class, table = TRAINERS[spec.instrument]
        module = importlib.import_module(module)
        settings = load_settings(args.spec, table, getattr(module, settings_class))
        out, metrics = getattr(module, function)(spec, settings)
    else:
        raise UserError(f"training for instrument {spec.instrument!r} is not available yet")
    manifest = json.loads((out / "manifest.json").read_text())
    held = manifest["held_out"]
    print(
        f"{spec.ensemble}: {len(manifest['members'])} members in {out}; held-out bias "
        f"{held['bias']:+.3f} dex, scatter {held['scatter']:.3f} dex, MAE {held['mae']:.3f} dex "
        f"over {held['n']} clusters"
    )
    print(format_metrics(metrics))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train an ensemble on the mock survey into the zoo")
    p.add_argument(
        "spec",
        help="training spec TOML with a [train] table (e.g. jobs/train_xray.toml), or a [joint] "
        "table (jobs/train_joint.toml)",
    )
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="do not train: recompute metrics.json of the finished entry at the spec's `out`",
    )
    p.set_defaults(func=run)
