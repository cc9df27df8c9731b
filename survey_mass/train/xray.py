"""X-ray training as in Ntampaka et al. 2019: one fold ensemble of the paper's CNN.

Unlike SZ and optical, the fold ensemble is the entry itself (written straight to ``out``, resumed
from its own checkpoints), so ``metrics.json`` comes after its manifest, not before it.
"""

from __future__ import annotations

from pathlib import Path

from survey_mass.models.xray import build_xray_cnn
from survey_mass.preprocess import TRAINING_PREPROCESSING
from survey_mass.train.data import training_set
from survey_mass.train.ensemble import train_fold_ensemble
from survey_mass.train.evaluate import evaluate_entry
from survey_mass.train.spec import TrainSpec


def train_xray(spec: TrainSpec, progress: bool = True) -> tuple[Path, dict]:
    """Train (or resume) the fold ensemble at ``spec.out``; returns (folder, metrics)."""
    images, truth = training_set(spec.universe, spec.n_clusters, "xray", progress, spec.tail)
    preprocessing = TRAINING_PREPROCESSING["xray"]
    out = train_fold_ensemble(spec, images, truth, build_xray_cnn, preprocessing, progress)
    return out, evaluate_entry(out)
