"""SZ training as in de Andres et al.: one model family per redshift bin, best of N trainings.

For each ``Z_BINS`` bin the universe of ``[train.universe]`` is restricted to the bin's redshifts
(its ``density_scale`` raised so the bin's ``n_clusters`` fit in a small cone) and its Planck-like
y maps are simulated. The bin's inputs are standardised, (y - mu) / sigma with one mu and sigma
over all the bin's pixels (no masses involved), as the published DeepPlanck models are. Then
``trainings`` fold ensembles of the VGG-like CNN are trained with different seeds, and for each
fold the member with the best *validation* fold is kept: the smallest scatter among those with
|bias| <= ``BIAS_TOLERANCE``, else the smallest |bias| (the paper keeps the training that is
unbiased on its validation set). Choosing per fold, on validation data only, keeps every test
fold unseen by the choice, so the held-out metrics stay honest.

The zoo entry holds every bin's chosen members (``combine = "by_z_bin"``, each with its
``z_bin``), the per-bin ``standardisation``, fold records with the held-out predictions,
``metrics.json`` (CNN vs aperture Y per bin) and, last, the manifest.
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import Field

from survey_mass.constants import Z_BINS
from survey_mass.mock.universe import UniverseSpec, clusters_per_deg2
from survey_mass.models.sz import SZ_INPUT_SHAPE, build_sz_vgg
from survey_mass.preprocess import sz as sz_preprocess
from survey_mass.spec.base import StrictModel
from survey_mass.train.assemble import (
    copy_member,
    entry_folders,
    member_entry,
    replace_entry,
    staging_folder,
)
from survey_mass.train.data import training_set
from survey_mass.train.ensemble import train_fold_ensemble
from survey_mass.train.evaluate import (
    HeldOutGroup,
    calibrate_entry,
    evaluate_groups,
    write_metrics,
)
from survey_mass.train.spec import TrainSpec
from survey_mass.zoo.manifest import write_manifest

#: a validation |bias| within this counts as unbiased when choosing among trainings [dex]
BIAS_TOLERANCE = 0.02


class SZSettings(StrictModel):
    """``[sz]``: what per-bin SZ training adds to ``[train]`` (whose n_clusters is per bin)."""

    trainings: int = Field(3, ge=1, le=100, description="N: fold ensembles per bin, new seeds")
    filters: list[int] = Field([8, 16, 32, 64], min_length=1, description="VGG block widths")
    hidden: list[int] = Field([64, 16], min_length=1)
    dropout: list[float] = Field([0.1, 0.0], min_length=1)
    cone_deg2: float = Field(
        30.0, gt=0, description="density_scale is raised until a bin's clusters fit this area"
    )
    work: str | None = Field(None, description="checkpoint folder (default out/train)")


def bins_covered(universe: UniverseSpec) -> list[tuple[float, float]]:
    """The redshift bins the universe reaches into."""
    return [(lo, hi) for lo, hi in Z_BINS if hi > universe.z_min and lo < universe.z_max]


def bin_universe(
    universe: UniverseSpec, z_bin: tuple[float, float], n_clusters: int, cone_deg2: float
) -> UniverseSpec:
    """The universe restricted to ``z_bin``, dense enough that ``n_clusters`` fit ``cone_deg2``."""
    fields = universe.model_dump()
    fields.update(z_min=max(z_bin[0], universe.z_min), z_max=min(z_bin[1], universe.z_max))
    if fields["z_min"] >= fields["z_max"]:
        raise ValueError(
            f"redshift bin {z_bin} is outside the universe's ({universe.z_min}, {universe.z_max}]"
        )
    per_deg2 = clusters_per_deg2(UniverseSpec(**{**fields, "density_scale": 1.0}))
    scale = max(universe.density_scale, math.ceil(n_clusters / (per_deg2 * cone_deg2)))
    return UniverseSpec(**{**fields, "density_scale": float(scale)})


def standardisation(images: np.ndarray) -> tuple[float, float]:
    """(mu, sigma) over every pixel of a bin's maps, as DeepPlanck's per-bin constants."""
    values = np.asarray(images, dtype=np.float64)
    return float(values.mean()), float(values.std())


def choose(records: list[dict]) -> int:
    """Index of the best fold record by its validation metrics (see module docstring)."""

    def key(i: int) -> tuple[bool, float]:
        v = records[i]["validation"]
        unbiased = abs(v["bias"]) <= BIAS_TOLERANCE
        return (not unbiased, v["scatter"] if unbiased else abs(v["bias"]))

    return min(range(len(records)), key=key)


def train_sz(spec: TrainSpec, settings: SZSettings, progress: bool = True) -> tuple[Path, dict]:
    """Train every covered bin, choose members, write the entry; returns (folder, metrics)."""
    out, work = entry_folders(spec, settings)
    covered = bins_covered(spec.universe)
    if not covered:
        raise ValueError(
            f"universe z range ({spec.universe.z_min}, {spec.universe.z_max}] meets no SZ bin "
            f"of {Z_BINS}"
        )
    mu, sigma = [None] * len(Z_BINS), [None] * len(Z_BINS)
    trained = []
    for z_bin in covered:
        i = Z_BINS.index(z_bin)
        universe, (mu[i], sigma[i]), runs = _train_bin(spec, settings, i, work, progress)
        trained.append((i, universe, runs))
    staging = staging_folder(out)
    chosen = [
        (i, universe, _choose_members(runs, spec.folds, staging, f"bin{i + 1}"))
        for i, universe, runs in trained
    ]
    groups = [HeldOutGroup(universe, spec.n_clusters, records) for _, universe, records in chosen]
    metrics = evaluate_groups(spec.ensemble, "sz", groups)
    _write_sz_manifest(staging, spec, settings, chosen, metrics, mu, sigma)
    out = replace_entry(staging, out)
    calibrate_entry(out)  # per redshift bin, on its validation folds
    return out, metrics


def _train_bin(
    spec: TrainSpec, settings: SZSettings, i: int, work: Path, progress: bool
) -> tuple[UniverseSpec, tuple[float, float], list[Path]]:
    """Bin ``i``'s ``trainings`` fold ensembles, each with new seeds, on its standardised maps:
    (the bin's universe, its (mu, sigma), the ensembles' folders)."""
    universe = bin_universe(spec.universe, Z_BINS[i], spec.n_clusters, settings.cone_deg2)
    images, truth = training_set(universe, spec.n_clusters, "sz", progress, spec.tail)
    mu, sigma = standardisation(images)
    inputs = ((images - mu) / sigma).astype(np.float32)
    build = partial(
        build_sz_vgg,
        SZ_INPUT_SHAPE,
        filters=settings.filters,
        hidden=settings.hidden,
        dropout=settings.dropout,
    )
    runs = []
    for t in range(settings.trainings):
        run = spec.model_copy(
            update={
                "ensemble": f"{spec.ensemble}-bin{i + 1}-t{t}",
                "out": str(work / f"bin{i + 1}" / f"t{t}"),
                "universe": universe,
                "fit_seed": spec.fit_seed + t * spec.folds,
            }
        )
        runs.append(train_fold_ensemble(run, inputs, truth, build, sz_preprocess.VERSION, progress))
    return universe, (mu, sigma), runs


def _write_sz_manifest(
    staging: Path,
    spec: TrainSpec,
    settings: SZSettings,
    chosen: list[tuple[int, UniverseSpec, list[dict]]],
    metrics: dict,
    mu: list[float | None],
    sigma: list[float | None],
) -> None:
    """The manifest of the chosen members, each tagged with its bin, universe and bin scatter."""
    members = [
        member_entry(
            r,
            z_bin=list(Z_BINS[i]),
            training=r["training"],
            scatter_dex=metrics["z_bins"][i]["cnn"]["scatter"],  # this bin's held-out scatter
            universe=universe.model_dump(),
            n_clusters=spec.n_clusters,
        )
        for i, universe, records in chosen
        for r in records
    ]
    overall = metrics["overall"]["cnn"]
    write_manifest(
        staging,
        spec.ensemble,
        "sz",
        members,
        inputs={"shape": list(SZ_INPUT_SHAPE), "quantity": "Compton y", "units": "dimensionless"},
        preprocessing=sz_preprocess.VERSION,
        standardisation={"formula": "(y - mu[bin]) / sigma[bin]", "mu": mu, "sigma": sigma},
        combine="by_z_bin",
        z_bins={"edges": [list(b) for b in Z_BINS], "closed": "upper (lo, hi]"},
        output="log10 M500c [Msun]",
        held_out={k: overall[k] for k in ("n", "bias", "median", "scatter", "mae")},
        scatter_dex=overall["scatter"],
        metrics=write_metrics(staging, metrics),
        prior=spec.prior(),
        selection={
            "trainings_per_fold": settings.trainings,
            "rule": f"validation fold: least scatter with |bias| <= {BIAS_TOLERANCE} dex, "
            "else least |bias|",
        },
        training={
            "n_clusters_per_bin": spec.n_clusters,
            "folds": spec.folds,
            "max_epochs": spec.max_epochs,
            "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate,
            "augmentations_per_epoch": spec.augmentations_per_epoch,
            "fit_seed": spec.fit_seed,
            "architecture": {"name": "sz_vgg", **settings.model_dump(exclude={"work"})},
        },
    )


def _choose_members(runs: list[Path], folds: int, staging: Path, prefix: str) -> list[dict]:
    """Per fold, copy the best training's member into the staging folder; its fold records."""
    records = []
    for k in range(folds):
        candidates = [json.loads((run / f"fold{k}.json").read_text()) for run in runs]
        t = choose(candidates)
        tried = [{"training": j, "validation": c["validation"]} for j, c in enumerate(candidates)]
        records.append(
            copy_member(runs[t], k, staging, f"{prefix}-fold{k}", training=t, candidates=tried)
        )
    return records
