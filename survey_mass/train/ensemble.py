"""Fold-ensemble training: one model per CV fold, checkpointed so a killed training resumes.

Each member trains on K-2 folds with random dihedral augmentations, stops on the validation fold by
the X-ray paper's criteria (or keeps its best validation epoch), and is scored on its test fold.
The held-out residuals of all folds give the ensemble's calibrated scatter, stored in the manifest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from survey_mass.models.manifest import write_manifest
from survey_mass.preprocess.augment import dihedral
from survey_mass.train.criteria import StoppingCriteria, fit_metrics
from survey_mass.train.folds import fold_split, mass_sorted_folds
from survey_mass.train.spec import TrainSpec


def _augmented(
    images: np.ndarray, rng: np.random.Generator, copies: int
) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` random dihedral transforms of each image, and the source index of each copy."""
    index = np.repeat(np.arange(len(images)), copies)
    which = rng.integers(0, 8, index.size)
    out = np.empty((index.size, *images.shape[1:]), dtype=images.dtype)
    for k in range(8):
        sel = which == k
        out[sel] = dihedral(images[index[sel]], k, np)
    return out, index


def train_member(
    build_model: Callable, images, log_mass, split, spec: TrainSpec, seed: int, log=print
):
    """Train one fold member; returns (model, validation metrics, epochs run, stopped_by_criteria)."""
    import keras

    keras.utils.set_random_seed(seed)
    train_idx, val_idx, _ = split
    model = build_model(mean_log_mass=float(log_mass[train_idx].mean()))
    model.compile(optimizer=keras.optimizers.Adam(spec.learning_rate), loss="mse")
    rng = np.random.default_rng(seed)
    criteria = StoppingCriteria()
    best = (np.inf, None, None)
    for epoch in range(1, spec.max_epochs + 1):
        x, src = _augmented(images[train_idx], rng, spec.augmentations_per_epoch)
        model.fit(
            x,
            log_mass[train_idx][src],
            batch_size=spec.batch_size,
            epochs=1,
            verbose=0,
            shuffle=True,
        )
        pred = model.predict(images[val_idx], batch_size=256, verbose=0)[:, 0]
        metrics = fit_metrics(log_mass[val_idx], pred)
        mse = metrics.scatter**2 + metrics.bias**2
        if mse < best[0]:
            best = (mse, model.get_weights(), metrics)
        log(
            f"  epoch {epoch:3d}: val bias {metrics.bias:+.3f} scatter {metrics.scatter:.3f} "
            f"slope {metrics.slope:.2f} max|d| {metrics.max_abs:.2f}"
        )
        if epoch >= spec.min_epochs and criteria.met(metrics):
            return model, metrics, epoch, True
    model.set_weights(best[1])
    return model, best[2], spec.max_epochs, False


def _save_weights_only(model, build_model, path: Path) -> None:
    """Save an uncompiled twin: the zoo ships weights, not optimizer state (a third of the size)."""
    twin = build_model()
    twin.set_weights(model.get_weights())
    twin.save(path)


def train_fold_ensemble(
    spec: TrainSpec,
    images: np.ndarray,
    truth: pd.DataFrame,
    build_model: Callable,
    preprocessing: str,
    progress: bool = True,
) -> Path:
    """Train (or resume) every fold member, then write the manifest last."""
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    log_mass = truth["log10_m500"].to_numpy()
    folds = mass_sorted_folds(log_mass, spec.folds)
    members, held_out = [], []
    for k in tqdm(
        range(spec.folds), desc=f"training {spec.ensemble}", unit="fold", disable=not progress
    ):
        split = fold_split(folds, k)
        path, record_path = out / f"fold{k}.keras", out / f"fold{k}.json"
        if record_path.is_file() and path.is_file():  # checkpoint of a finished fold: resume
            record = json.loads(record_path.read_text())
        else:
            t0 = time.perf_counter()
            model, val, epochs, stopped = train_member(
                build_model,
                images,
                log_mass,
                split,
                spec,
                spec.fit_seed + k,
                log=tqdm.write if progress else (lambda s: None),
            )
            pred = model.predict(images[split[2]], batch_size=256, verbose=0)[:, 0]
            _save_weights_only(model, build_model, path)
            record = {
                "fold": k,
                "file": path.name,
                "epochs": epochs,
                "stopped_by_criteria": stopped,
                "train_seconds": round(time.perf_counter() - t0, 1),
                "n_train": int(split[0].size),
                "validation": val.as_dict(),
                "test": fit_metrics(log_mass[split[2]], pred).as_dict(),
                "test_ids": truth["target_id"].iloc[split[2]].tolist(),
                "test_pred": [round(float(p), 5) for p in pred],
            }
            record_path.write_text(json.dumps(record))
        members.append({k: v for k, v in record.items() if k not in ("test_ids", "test_pred")})
        held_out.append(
            pd.DataFrame({"target_id": record["test_ids"], "pred": record["test_pred"]})
        )
    held = pd.concat(held_out).merge(truth[["target_id", "log10_m500"]], on="target_id")
    overall = fit_metrics(held["log10_m500"].to_numpy(), held["pred"].to_numpy())
    write_manifest(
        out,
        spec.ensemble,
        spec.instrument,
        members,
        preprocessing=preprocessing,
        output="log10 M500c [Msun]",
        held_out=overall.as_dict(),
        scatter_dex=overall.scatter,
        training={
            "universe": spec.universe.model_dump(),
            "n_clusters": int(len(truth)),
            "folds": spec.folds,
            "max_epochs": spec.max_epochs,
            "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate,
            "fit_seed": spec.fit_seed,
        },
    )
    return out
