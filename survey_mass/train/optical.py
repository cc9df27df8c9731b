"""Optical training, the two steps of Lin et al. 2022 on the mock SDSS survey.

Step 1 (no masses): every training cutout is split into its five single-band images, and the band
classifier (``models.optical``) learns which band each is, on random dihedral copies; a held-out
set of clusters (``classifier_holdout``) measures its accuracy (chance is 1/5). Step 2 (labels
scarce): a random ``labelled_fraction`` of the clusters get their masses, and a fold ensemble of
regressors -- the frozen extractor on each band plus a trained head -- is trained on them with
``train_fold_ensemble`` (mass-sorted folds, the X-ray paper's stopping criteria).

The entry's members are whole image -> mass models. They serve the universe's redshift range
only: ``combine = "by_z_bin"`` with one range ``(0, z_max]``, so a target beyond it gets no mass
rather than an extrapolated one.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import Field
from tqdm.auto import tqdm

from survey_mass.constants import SDSS_BANDS
from survey_mass.errors import UserError
from survey_mass.models.optical import (
    EXTRACTOR_NAME,
    OPTICAL_INPUT_SHAPE,
    build_band_classifier,
    build_feature_extractor,
    build_optical_regressor,
)
from survey_mass.preprocess import optical as optical_preprocess
from survey_mass.spec.base import StrictModel
from survey_mass.train.assemble import (
    copy_member,
    entry_folders,
    member_entry,
    replace_entry,
    staging_folder,
)
from survey_mass.train.data import training_set
from survey_mass.train.ensemble import augmented, train_fold_ensemble
from survey_mass.train.evaluate import HeldOutGroup, evaluate_groups, write_metrics
from survey_mass.train.spec import TrainSpec
from survey_mass.zoo.manifest import sha256_file, write_manifest

CLASSIFIER_FILE = "band_classifier.keras"
REGRESSOR_DIR = "regressor"


class OpticalSettings(StrictModel):
    """``[optical]``: what the two-step optical training adds to ``[train]``."""

    labelled_fraction: float = Field(0.25, gt=0, le=1, description="clusters with known masses")
    classifier_epochs: int = Field(4, ge=1, description="step 1 epochs over all single-band images")
    classifier_learning_rate: float = Field(1e-3, gt=0)
    classifier_holdout: float = Field(
        0.1, gt=0, lt=0.5, description="fraction of clusters kept out of step 1 to test it"
    )
    filters: list[int] = Field([8, 16, 32, 64], min_length=1, description="extractor widths")
    hidden: list[int] = Field([32, 16], min_length=1, description="regression head widths")
    dropout: list[float] = Field([0.2, 0.0], min_length=1)
    work: str | None = Field(None, description="checkpoint folder (default out/train)")


def single_bands(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 5) cubes -> (5N, H, W, 1) single-band images and their band index (ugriz)."""
    n, h, w, bands = images.shape
    singles = np.moveaxis(images, -1, 1).reshape(n * bands, h, w, 1)
    return singles, np.tile(np.arange(bands), n)


def train_band_classifier(
    images: np.ndarray, spec: TrainSpec, settings: OpticalSettings, log=print
) -> tuple[object, dict]:
    """Step 1 on the cutouts' single bands; returns (classifier, record with held-out accuracy)."""
    from survey_mass.tensorflow_runtime import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(spec.fit_seed)
    rng = np.random.default_rng(spec.fit_seed)
    held = rng.random(len(images)) < settings.classifier_holdout
    if held.all() or not held.any():
        held = np.arange(len(images)) % 10 == 0  # too few clusters to draw a held-out set
    x_train, y_train = single_bands(images[~held])
    x_test, y_test = single_bands(images[held])
    classifier = _new_classifier(settings)
    classifier.compile(
        optimizer=keras.optimizers.Adam(settings.classifier_learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    for epoch in range(1, settings.classifier_epochs + 1):
        x, src = augmented(x_train, rng, 1)
        classifier.fit(x, y_train[src], batch_size=spec.batch_size, epochs=1, verbose=0)
        log(
            f"  band classifier epoch {epoch}: held-out accuracy {_accuracy(classifier, x_test, y_test):.3f}"
        )
    accuracy = _accuracy(classifier, x_test, y_test)
    confusion = np.zeros((len(SDSS_BANDS), len(SDSS_BANDS)), dtype=int)
    np.add.at(confusion, (y_test, classifier.predict(x_test, verbose=0).argmax(axis=1)), 1)
    return classifier, {
        "held_out_accuracy": accuracy,
        "chance": 1 / len(SDSS_BANDS),
        "confusion_true_by_predicted": confusion.tolist(),
        "n_train_images": int(len(x_train)),
        "n_test_images": int(len(x_test)),
        "epochs": settings.classifier_epochs,
    }


def _new_classifier(settings: OpticalSettings):
    """An untrained band classifier on a new extractor of ``settings.filters``."""
    return build_band_classifier(build_feature_extractor(OPTICAL_INPUT_SHAPE[:2], settings.filters))


def _accuracy(classifier, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(classifier.predict(x, batch_size=256, verbose=0).argmax(axis=1) == y))


def labelled_subset(n: int, fraction: float, folds: int, seed: int) -> np.ndarray:
    """Sorted indices of the clusters whose masses step 2 may use (at least 2 per fold)."""
    size = max(round(fraction * n), 2 * folds)
    if size > n:
        raise UserError(
            f"{n} clusters cannot give {folds} folds of 2 labelled clusters; raise n_clusters"
        )
    return np.sort(np.random.default_rng([seed, 2]).choice(n, size=size, replace=False))


def _step1(images, spec, settings, work: Path, progress: bool) -> tuple[object, dict]:
    """The band classifier, trained or (checkpoint of this work folder) loaded.

    Step 2's fold checkpoints depend on it: a newly trained classifier clears them.
    """
    from survey_mass.tensorflow_runtime import import_tensorflow

    import_tensorflow()
    import keras

    path, record_path = work / CLASSIFIER_FILE, work / "band_classifier.json"
    if path.is_file() and record_path.is_file():
        return (
            keras.models.load_model(path, safe_mode=True, compile=False),
            json.loads(record_path.read_text()),
        )
    shutil.rmtree(work / REGRESSOR_DIR, ignore_errors=True)  # trained on another extractor
    classifier, record = train_band_classifier(
        images, spec, settings, log=tqdm.write if progress else (lambda s: None)
    )
    work.mkdir(parents=True, exist_ok=True)
    # an uncompiled twin: the zoo ships weights, not the optimizer's state
    twin = _new_classifier(settings)
    twin.set_weights(classifier.get_weights())
    twin.save(path)
    record_path.write_text(json.dumps(record))  # after the model: marks step 1 done
    return twin, record


def train_optical(
    spec: TrainSpec, settings: OpticalSettings, progress: bool = True
) -> tuple[Path, dict]:
    """Both steps, then the entry (members, classifier, metrics, manifest); (folder, metrics)."""
    out, work = entry_folders(spec, settings)
    images, truth = training_set(spec.universe, spec.n_clusters, "optical", progress, spec.tail)
    classifier, step1 = _step1(images, spec, settings, work, progress)
    labelled = labelled_subset(len(truth), settings.labelled_fraction, spec.folds, spec.fit_seed)
    fold_dir = _step2(
        images[labelled],
        truth.iloc[labelled].reset_index(drop=True),
        classifier.get_layer(EXTRACTOR_NAME),
        spec,
        settings,
        work,
        progress,
    )
    step2 = json.loads((fold_dir / "manifest.json").read_text())
    staging = staging_folder(out)
    records = [copy_member(fold_dir, k, staging, f"fold{k}") for k in range(spec.folds)]
    (staging / CLASSIFIER_FILE).write_bytes((work / CLASSIFIER_FILE).read_bytes())
    metrics = evaluate_groups(
        spec.ensemble, "optical", [HeldOutGroup(spec.universe, spec.n_clusters, records)]
    )
    _write_optical_manifest(staging, spec, settings, records, metrics, step1, step2, len(labelled))
    return replace_entry(staging, out), metrics


def _step2(images, truth, extractor, spec, settings, work: Path, progress: bool) -> Path:
    """The fold ensemble of regressors on the labelled clusters; returns its folder."""
    build = partial(
        build_optical_regressor, extractor, hidden=settings.hidden, dropout=settings.dropout
    )
    run = spec.model_copy(
        update={"ensemble": f"{spec.ensemble}-regressor", "out": str(work / REGRESSOR_DIR)}
    )
    return train_fold_ensemble(run, images, truth, build, optical_preprocess.VERSION, progress)


def _write_optical_manifest(
    staging: Path,
    spec: TrainSpec,
    settings: OpticalSettings,
    records: list[dict],
    metrics: dict,
    step1: dict,
    step2: dict,
    n_labelled: int,
) -> None:
    """The entry's manifest: step 2's held-out metrics and calibration, step 1's record; every
    member serves the training redshift range only."""
    z_bin = [0.0, spec.universe.z_max]
    write_manifest(
        staging,
        spec.ensemble,
        "optical",
        [member_entry(r, z_bin=z_bin) for r in records],
        inputs={
            "shape": list(OPTICAL_INPUT_SHAPE),
            "bands": "".join(SDSS_BANDS),
            "quantity": "asinh(flux at z_ref / sky noise at z_ref) per band",
            "z_ref": optical_preprocess.Z_REF,
        },
        preprocessing=optical_preprocess.VERSION,
        combine="by_z_bin",
        z_bins={"edges": [z_bin], "closed": "upper (lo, hi]", "why": "training redshift range"},
        output="log10 M500c [Msun]",
        held_out=step2["held_out"],
        scatter_dex=step2["scatter_dex"],
        calibration=step2["calibration"],
        metrics=write_metrics(staging, metrics),
        prior=spec.prior(),
        band_classifier={
            "file": CLASSIFIER_FILE,
            "sha256": sha256_file(staging / CLASSIFIER_FILE),
            **step1,
        },
        training={
            **step2["training"],
            "n_clusters": spec.n_clusters,  # drawn; step 2 saw the labelled subset of them
            "labelled_fraction": settings.labelled_fraction,
            "n_labelled": n_labelled,
            "architecture": {"name": "optical_two_step", **settings.model_dump(exclude={"work"})},
        },
    )
