"""Fold-ensemble training: one model per CV fold, checkpointed so a killed training resumes.

Each member trains on K-2 folds with random dihedral augmentations on the log-MSE, stops on the
validation fold by the X-ray paper's criteria (or keeps its best validation epoch), optionally
learns a per-cluster aleatoric variance by a Gaussian-NLL fine-tuning phase, and is scored on its
test fold. Uncertainties are then calibrated on the validation folds and their coverage measured
on the test folds (never seen by the member that predicts them), and both go to the manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from survey_mass.constants import GAUSS_95
from survey_mass.errors import UserError
from survey_mass.models.heads import gaussian_nll, log_mse
from survey_mass.preprocess.augment import dihedral
from survey_mass.train.criteria import StoppingCriteria, fit_metrics
from survey_mass.train.folds import fold_split, mass_sorted_folds
from survey_mass.train.spec import TrainSpec
from survey_mass.zoo.manifest import write_manifest

#: fractions of a Gaussian within 1 and 2 sigma: the 68% and 95% intervals
ONE_SIGMA, TWO_SIGMA = 0.6827, 0.9545


def augmented(
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


def predict_with_sigma(model, images) -> tuple[np.ndarray, np.ndarray | None]:
    """(log10 M, aleatoric sigma or None) of a member on a batch."""
    out = model.predict(images, batch_size=256, verbose=0)
    if out.shape[1] == 1:
        return out[:, 0], None
    return out[:, 0], np.exp(0.5 * np.clip(out[:, 1], -20.0, 10.0))


def _build(build_model: Callable, spec: TrainSpec, mean_log_mass: float = 14.3):
    extra = {"aleatoric": True} if spec.aleatoric else {}
    return build_model(mean_log_mass=mean_log_mass, **extra)


def train_member(
    build_model: Callable, images, log_mass, split, spec: TrainSpec, seed: int, log=print
):
    """Train one fold member; returns (model, validation metrics, epochs run, stopped_by_criteria)."""
    from survey_mass.tensorflow_runtime import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    train_idx, val_idx, _ = split
    model = _build(build_model, spec, float(log_mass[train_idx].mean()))
    model.compile(optimizer=keras.optimizers.Adam(spec.learning_rate), loss=log_mse)
    rng = np.random.default_rng(seed)
    criteria = StoppingCriteria()

    def epoch_on_train():
        x, src = augmented(images[train_idx], rng, spec.augmentations_per_epoch)
        model.fit(x, log_mass[train_idx][src], batch_size=spec.batch_size, epochs=1, verbose=0)

    best = (np.inf, None, None)
    stopped, epochs = False, spec.max_epochs
    for epoch in range(1, spec.max_epochs + 1):
        epoch_on_train()
        pred, _ = predict_with_sigma(model, images[val_idx])
        metrics = fit_metrics(log_mass[val_idx], pred)
        mse = metrics.scatter**2 + metrics.bias**2
        if mse < best[0]:
            best = (mse, model.get_weights(), metrics)
        log(
            f"  epoch {epoch:3d}: val bias {metrics.bias:+.3f} scatter {metrics.scatter:.3f} "
            f"slope {metrics.slope:.2f} max|d| {metrics.max_abs:.2f}"
        )
        if epoch >= spec.min_epochs and criteria.met(metrics):
            best, stopped, epochs = (mse, model.get_weights(), metrics), True, epoch
            break
    model.set_weights(best[1])
    if spec.aleatoric:  # the mass is set; now learn how sure to be of it, per cluster
        model.compile(optimizer=keras.optimizers.Adam(spec.learning_rate / 2), loss=gaussian_nll)
        best_nll = (
            model.evaluate(images[val_idx], log_mass[val_idx], verbose=0),
            model.get_weights(),
        )
        for epoch in range(1, spec.nll_epochs + 1):
            epoch_on_train()
            nll = model.evaluate(images[val_idx], log_mass[val_idx], verbose=0)
            log(f"  NLL epoch {epoch:3d}: val NLL {nll:+.3f}")
            if nll < best_nll[0]:
                best_nll = (nll, model.get_weights())
        model.set_weights(best_nll[1])
        pred, _ = predict_with_sigma(model, images[val_idx])
        best = (None, None, fit_metrics(log_mass[val_idx], pred))
    return model, best[2], epochs, stopped


def _save_weights_only(model, build_model, spec: TrainSpec, path: Path) -> None:
    """Save an uncompiled twin: the zoo ships weights, not optimizer state (a third of the size)."""
    twin = _build(build_model, spec)
    twin.set_weights(model.get_weights())
    twin.save(path)


def _rounded(values) -> list | None:
    return None if values is None else [round(float(v), 5) for v in values]


def calibrate(val: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Scale sigma so 68% of validation residuals fall within it, and find the half-width (in
    those sigmas) that holds 95% of them; measure both intervals' coverage on the test folds.

    With an aleatoric sigma per cluster the scale multiplies it; without, sigma is one number.
    The 95% half-width is measured, not assumed 1.96: the residuals have heavier tails than a
    Gaussian (mis-centred clusters, mergers), so a Gaussian 95% interval covers too little.
    """
    aleatoric = val["sigma"].notna().all() and test["sigma"].notna().all()
    val_sigma = val["sigma"].to_numpy() if aleatoric else np.ones(len(val))
    test_sigma = test["sigma"].to_numpy() if aleatoric else np.ones(len(test))
    val_ratio = np.abs(val["pred"] - val["log10_m500"]) / val_sigma
    scale = float(np.quantile(val_ratio, ONE_SIGMA))
    interval_95 = float(np.quantile(val_ratio / scale, TWO_SIGMA))
    z_test = np.abs(test["pred"] - test["log10_m500"]) / (scale * test_sigma)
    return {
        "kind": "aleatoric" if aleatoric else "constant",
        "sigma_scale" if aleatoric else "sigma_dex": scale,
        "interval_95": interval_95,
        "coverage_68": float(np.mean(z_test <= 1.0)),
        "coverage_95": float(np.mean(z_test <= interval_95)),
        "coverage_95_gaussian": float(np.mean(z_test <= GAUSS_95)),
        "n_validation": int(len(val)),
        "n_test": int(len(test)),
    }


def held_out_frames(records: list[dict], truth: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(validation, test) predictions of fold records, each row with its cluster's true mass."""
    frames = {}
    for part in ("validation", "test"):
        frames[part] = pd.concat(
            pd.DataFrame(
                {
                    "target_id": r[f"{part}_ids"],
                    "pred": r[f"{part}_pred"],
                    "sigma": r[f"{part}_sigma"] or np.nan,
                }
            )
            for r in records
        ).merge(truth[["target_id", "log10_m500"]], on="target_id")
    return frames["validation"], frames["test"]


def train_fold_ensemble(
    spec: TrainSpec,
    images: np.ndarray,
    truth: pd.DataFrame,
    build_model: Callable,
    preprocessing: str,
    progress: bool = True,
) -> Path:
    """Train (or resume) every fold member, calibrate, then write the manifest last."""
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    unset = {"out"} | ({"tail"} if spec.tail is None else set())  # v1 checkpoints still resume
    spec_hash = hashlib.sha256(spec.model_dump_json(exclude=unset).encode()).hexdigest()[:16]
    folds = mass_sorted_folds(truth["log10_m500"].to_numpy(), spec.folds)
    log = tqdm.write if progress else (lambda s: None)
    records = []
    for k in tqdm(
        range(spec.folds), desc=f"training {spec.ensemble}", unit="fold", disable=not progress
    ):
        record = _finished_fold(out, k, spec_hash)
        if record is None:
            model, scored = _train_fold(
                build_model, images, truth, fold_split(folds, k), spec, k, log
            )
            record = {"spec_hash": spec_hash, **scored}
            _save_weights_only(model, build_model, spec, out / record["file"])
            (out / f"fold{k}.json").write_text(json.dumps(record))  # after the model: fold done
        records.append(record)
    _write_fold_manifest(out, spec, records, truth, preprocessing)
    return out


def _finished_fold(out: Path, k: int, spec_hash: str) -> dict | None:
    """Fold ``k``'s record if its checkpoint is complete (resume), else None; one trained with
    another spec is refused, so a changed job never mixes with old members."""
    record_path = out / f"fold{k}.json"
    if not (record_path.is_file() and (out / f"fold{k}.keras").is_file()):
        return None
    record = json.loads(record_path.read_text())
    if record.get("spec_hash") != spec_hash:
        raise UserError(
            f"{record_path} was trained with another training spec; delete {out} "
            "to retrain, or point `out` at a new folder"
        )
    return record


def _train_fold(
    build_model: Callable, images, truth: pd.DataFrame, split, spec: TrainSpec, k: int, log
) -> tuple[object, dict]:
    """Train member ``k`` and score it: (model, fold record with its held-out predictions)."""
    log_mass = truth["log10_m500"].to_numpy()
    t0 = time.perf_counter()
    model, val, epochs, stopped = train_member(
        build_model, images, log_mass, split, spec, spec.fit_seed + k, log=log
    )
    record = {
        "fold": k,
        "file": f"fold{k}.keras",
        "epochs": epochs,
        "stopped_by_criteria": stopped,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "n_train": int(split[0].size),
        "validation": val.as_dict(),
    }
    for part, idx in (("validation", split[1]), ("test", split[2])):
        pred, sigma = predict_with_sigma(model, images[idx])
        record[f"{part}_ids"] = truth["target_id"].iloc[idx].tolist()
        record[f"{part}_pred"] = _rounded(pred)
        record[f"{part}_sigma"] = _rounded(sigma)
    record["test"] = fit_metrics(log_mass[split[2]], record["test_pred"]).as_dict()
    return model, record


def _write_fold_manifest(
    out: Path, spec: TrainSpec, records: list[dict], truth: pd.DataFrame, preprocessing: str
) -> None:
    """The manifest of the finished folds: members, pooled held-out metrics and calibration."""
    members = [
        {
            k: v
            for k, v in record.items()
            if k != "spec_hash" and not k.endswith(("_ids", "_pred", "_sigma"))
        }
        for record in records
    ]
    val_df, test_df = held_out_frames(records, truth)
    overall = fit_metrics(test_df["log10_m500"].to_numpy(), test_df["pred"].to_numpy())
    write_manifest(
        out,
        spec.ensemble,
        spec.instrument,
        members,
        preprocessing=preprocessing,
        output="log10 M500c [Msun]" + (", log variance" if spec.aleatoric else ""),
        held_out=overall.as_dict(),
        scatter_dex=overall.scatter,
        calibration=calibrate(val_df, test_df),
        prior=spec.prior(),
        training={
            "universe": spec.universe.model_dump(),
            "n_clusters": int(len(truth)),
            "folds": spec.folds,
            "max_epochs": spec.max_epochs,
            "aleatoric": spec.aleatoric,
            "nll_epochs": spec.nll_epochs if spec.aleatoric else 0,
            "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate,
            "fit_seed": spec.fit_seed,
        },
    )
