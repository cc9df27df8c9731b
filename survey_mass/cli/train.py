"""``survey-mass train SPEC.toml``: train an ensemble on the mock survey into the zoo.

X-ray trains one fold ensemble; SZ one per redshift bin (best of N trainings, ``[sz]`` table);
optical the two-step model (``[optical]`` table); a ``[joint]`` spec fits the joint model that
combines the shipped ensembles (``survey_mass.train.joint``). Every ensemble's run ends with the
held-out metrics of the CNN against its summary-statistic baseline, per redshift bin, printed and
saved as the entry's ``metrics.json``. ``--evaluate-only`` recomputes them for an entry already trained.
The verb only wires: each instrument's trainer is ``survey_mass.train.TRAINERS[instrument]``.
"""

from __future__ import annotations

import argparse
import json

from survey_mass.train import TRAINERS
from survey_mass.train.spec import load_train_spec


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from survey_mass.errors import UserError
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
    else:
        out, metrics = TRAINERS[spec.instrument](spec, args.spec)
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
