"""Does starting from the published DeepPlanck weights help on our mock SZ maps?

For each redshift bin, the bin's mock clusters (``train.sz.bin_universe``) are standardised with
the published per-bin mu and sigma (what the weights expect), and three estimates are compared on
held-out clusters:

- ``zero_shot``: the published model as is (every cluster is held out: it never saw our mocks);
- ``finetuned``: a fold ensemble whose members start from the published weights;
- ``scratch``: the same DeepPlanck architecture, same folds, epochs, augmentations and stopping
  rule, from a random start.

Fine-tuning uses a smaller learning rate (``finetune_learning_rate``) than training from scratch,
as is usual, so the pretrained features are adapted rather than overwritten. Run it with
``python experiments/finetune_deepplanck.py --out out/finetune``; results go to ``results.json`` there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np
from pydantic import Field

from survey_mass.constants import Z_BINS
from survey_mass.models.deepplanck import PREPROCESSING, DeepPlanckEnsemble
from survey_mass.models.sz import build_deepplanck_cnn
from survey_mass.spec.base import StrictModel
from survey_mass.spec.universe import UniverseSpec
from survey_mass.train.criteria import fit_metrics
from survey_mass.train.data import training_clusters, training_inputs
from survey_mass.train.ensemble import train_fold_ensemble
from survey_mass.train.spec import TrainSpec
from survey_mass.train.sz import bin_universe

VARIANTS = ("finetuned", "scratch")


class FinetuneSettings(StrictModel):
    """The experiment's size; the defaults run in about ten minutes on two CPU cores."""

    bins: list[int] = Field([0, 1, 2, 3], description="indices into Z_BINS")
    n_clusters: int = Field(200, ge=30, description="clusters per bin")
    folds: int = Field(4, ge=3)
    max_epochs: int = Field(10, ge=1)
    min_epochs: int = Field(3, ge=1)
    augmentations_per_epoch: int = Field(2, ge=1, le=8)
    finetune_learning_rate: float = Field(1e-4, gt=0)
    scratch_learning_rate: float = Field(5e-4, gt=0)
    universe: UniverseSpec = Field(
        default_factory=lambda: UniverseSpec(seed=4004, log10_m500_min=14.0)
    )
    cone_deg2: float = 30.0


def _published_start(model: keras.Model):
    """A builder whose models start as copies of ``model`` (the wanted mean mass is ignored)."""

    def build(mean_log_mass: float = 14.3) -> keras.Model:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return copy

    return build


def _random_start(mean_log_mass: float = 14.3) -> keras.Model:
    """The DeepPlanck architecture, untrained, its output bias at the sample's mean mass."""
    model = build_deepplanck_cnn()
    output = model.get_layer("log10_m500")
    kernel, bias = output.get_weights()
    output.set_weights([kernel, np.full_like(bias, mean_log_mass)])
    return model


def compare(
    settings: FinetuneSettings, published: DeepPlanckEnsemble, work: Path, progress: bool = False
) -> dict:
    """Held-out metrics per bin: zero-shot, fine-tuned and from-scratch (see module docstring)."""
    results = {"settings": settings.model_dump(), "bins": []}
    for i in settings.bins:
        universe = bin_universe(
            settings.universe, Z_BINS[i], settings.n_clusters, settings.cone_deg2
        )
        truth = training_clusters(universe, settings.n_clusters)
        images, truth = training_inputs(universe, truth, "sz", progress=progress)
        x = published.standardise(images[..., 0], i)
        log_mass = truth["log10_m500"].to_numpy()
        zero_shot = published.models[i].predict(x, batch_size=256, verbose=0)[:, 0]
        row = {
            "z_bin": list(Z_BINS[i]),
            "n_clusters": int(len(truth)),
            "zero_shot": fit_metrics(log_mass, zero_shot).as_dict(),
        }
        for variant in VARIANTS:
            finetune = variant == "finetuned"
            spec = TrainSpec(
                instrument="sz",
                ensemble=f"deepplanck-{variant}-bin{i + 1}",
                out=str(work / f"bin{i + 1}" / variant),
                n_clusters=settings.n_clusters,
                folds=settings.folds,
                max_epochs=settings.max_epochs,
                min_epochs=settings.min_epochs,
                augmentations_per_epoch=settings.augmentations_per_epoch,
                learning_rate=(
                    settings.finetune_learning_rate if finetune else settings.scratch_learning_rate
                ),
                universe=universe,
            )
            build = _published_start(published.models[i]) if finetune else _random_start
            out = train_fold_ensemble(spec, x, truth, build, PREPROCESSING, progress)
            manifest = json.loads((out / "manifest.json").read_text())
            row[variant] = manifest["held_out"]
            row[f"{variant}_epochs"] = [m["epochs"] for m in manifest["members"]]
        results["bins"].append(row)
    return results


def format_results(results: dict) -> str:
    """A Markdown table: held-out bias and scatter [dex] per bin and variant."""
    lines = [
        "| z bin | n | zero-shot bias / scatter | fine-tuned bias / scatter "
        "| scratch bias / scatter |",
        "|---|---|---|---|---|",
    ]
    for row in results["bins"]:
        cells = [
            f"{row[v]['bias']:+.3f} / {row[v]['scatter']:.3f}" for v in ("zero_shot", *VARIANTS)
        ]
        lines.append(
            f"| {row['z_bin'][0]:g}-{row['z_bin'][1]:g} | {row['n_clusters']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/finetune", help="work folder and results.json")
    parser.add_argument("--source", help="folder of the DeepPlanck bestmodel-{1..4}.h5")
    parser.add_argument("--settings", help="JSON of FinetuneSettings fields to override")
    args = parser.parse_args(argv)
    settings = FinetuneSettings.model_validate(json.loads(args.settings or "{}"))
    out = Path(args.out)
    results = compare(settings, DeepPlanckEnsemble.from_published(args.source), out, progress=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(format_results(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
