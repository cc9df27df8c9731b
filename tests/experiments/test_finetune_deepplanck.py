"""The DeepPlanck fine-tuning experiment (experiments/finetune_deepplanck.py) still runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from survey_mass.spec.universe import UniverseSpec

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "finetune_deepplanck.py"
_spec = importlib.util.spec_from_file_location("finetune_deepplanck", SCRIPT)
finetune = importlib.util.module_from_spec(_spec)
sys.modules["finetune_deepplanck"] = finetune
_spec.loader.exec_module(finetune)


@pytest.mark.slow
def test_finetuning_starts_from_the_published_deepplanck_weights(shared_data, tmp_path):
    from survey_mass.models.deepplanck import DeepPlanckEnsemble

    FinetuneSettings, compare, format_results = (
        finetune.FinetuneSettings,
        finetune.compare,
        finetune.format_results,
    )

    settings = FinetuneSettings(
        bins=[1],
        n_clusters=30,
        folds=3,
        max_epochs=1,
        min_epochs=1,
        augmentations_per_epoch=1,
        finetune_learning_rate=1e-9,  # so small that fine-tuning leaves the published model as is
        universe=UniverseSpec(seed=5, log10_m500_min=14.0),
    )
    published = DeepPlanckEnsemble.from_published(shared_data / "deepplanck")
    row = compare(settings, published, tmp_path)["bins"][0]
    assert row["z_bin"] == [0.1, 0.2] and row["zero_shot"]["n"] == row["finetuned"]["n"] == 30
    for key in ("bias", "scatter"):
        assert row["finetuned"][key] == pytest.approx(row["zero_shot"][key], abs=1e-4)
    assert row["scratch"]["n"] == 30 and row["scratch"]["scatter"] != row["finetuned"]["scatter"]
    assert "0.1-0.2" in format_results({"bins": [row]})
