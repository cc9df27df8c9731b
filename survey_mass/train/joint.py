"""Fit the joint model (``survey_mass.infer.joint``) on mock clusters none of its ensembles saw.

The clusters come from their own universe seed, are weighed by the shipped ensembles through the
jobs' own path (``infer.weigh.weigh``: mock cutouts, the ensembles' preprocessing, their fold
ensembles), and the model is fitted on all of them. Its held-out metrics come from cross-fitting:
clusters sorted by mass and dealt into folds, each fold predicted by a model fitted on the others,
and compared with every instrument alone, raw (what the catalog would hold without the joint
model) and recalibrated by the joint model's own single-instrument fit (what the other
instruments add), and with the inverse-variance mean.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import tomllib
from pydantic import Field, ValidationError, model_validator
from tqdm.auto import tqdm

from survey_mass.constants import INSTRUMENTS
from survey_mass.errors import JobSpecError, UserError
from survey_mass.infer.ensemble import load_ensemble
from survey_mass.infer.joint import (
    JOINT,
    MODEL_FILE,
    BinModel,
    JointParameters,
    inverse_variance,
    subset_key,
)
from survey_mass.mock.source import MockSource
from survey_mass.sources.base import Target
from survey_mass.spec.base import StrictModel
from survey_mass.spec.job import format_validation_error
from survey_mass.spec.universe import UniverseSpec
from survey_mass.train.assemble import check_replaceable, replace_entry, staging_folder
from survey_mass.train.criteria import fit_metrics
from survey_mass.train.folds import mass_sorted_folds
from survey_mass.validate.metrics import coverage
from survey_mass.zoo.manifest import write_manifest
from survey_mass.zoo.registry import resolve_entry

#: a bin needs this many clusters with an instrument to fit its recalibration
MIN_PER_BIN = 30
#: an instrument whose masses correlate less with the truth in a bin (the SZ ensemble above z 0.4
#: predicts its training mean for the clusters Planck cannot see) is left out of that bin: its
#: recalibration would be a fit to noise, with wild slopes
MIN_CORRELATION = 0.2
ONE_SIGMA, TWO_SIGMA = 0.6827, 0.9545


class JointSpec(StrictModel):
    """The ``[joint]`` table of a training spec: which ensembles, which clusters, which bins."""

    ensemble: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="zoo name, e.g. joint-v1")
    out: str = Field(description="folder the entry is written to")
    members: dict[str, str] = Field(description="instrument -> zoo ensemble, e.g. xray = 'xray-v1'")
    n_clusters: int = Field(1500, ge=100)
    folds: int = Field(5, ge=3, le=20, description="cross-fitting folds for held-out metrics")
    z_bins: list[tuple[float, float]] = Field(
        default=[(0.0, 0.2), (0.2, 0.4), (0.4, 1.0)], description="(lo, hi] redshift bins"
    )
    batch_size: int = Field(64, ge=1)
    universe: UniverseSpec = Field(default_factory=lambda: UniverseSpec(seed=4004))

    @model_validator(mode="after")
    def _check(self) -> JointSpec:
        unknown = sorted(set(self.members) - set(INSTRUMENTS))
        if unknown or len(self.members) < 2:
            raise ValueError(f"members: give two or more of {INSTRUMENTS} (unknown: {unknown})")
        return self


def load_joint_spec(path: str | Path) -> JointSpec | None:
    """The ``[joint]`` table of a spec file, or None when it has none."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as err:
        raise JobSpecError(f"{path}: not valid TOML ({err})") from err
    if "joint" not in data:
        return None
    try:
        return JointSpec.model_validate(data["joint"])
    except ValidationError as err:
        raise JobSpecError(format_validation_error(err, f"{path} [joint]")) from err


def weigh_mock_clusters(
    universe: UniverseSpec,
    truth: pd.DataFrame,
    members: dict[str, str],
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per cluster of ``truth``: each instrument's mass and sigma (NaN where it gave none), and
    the ensemble versions used."""
    from survey_mass.infer.weigh import weigh

    source = MockSource(universe)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in truth.itertuples()]
    table = truth[["target_id", "z", "log10_m500"]].reset_index(drop=True)
    versions = {}
    for inst in tqdm(members, desc="weighing with each ensemble", disable=not progress):
        ensemble = load_ensemble(resolve_entry(members[inst]))
        versions[inst] = ensemble.version
        results, _ = weigh(source, ensemble, targets, inst, np, batch_size, tta=False)
        values = np.array([results.get(t, (np.nan,) * 4) for t in table["target_id"]])
        table[f"m_{inst}"], table[f"s_{inst}"] = values[:, 0], values[:, 2]
    return table, versions


def _fit_bins(table: pd.DataFrame, instruments: list[str], z_bins) -> list[BinModel]:
    z, truth = table["z"].to_numpy(), table["log10_m500"].to_numpy()
    bins = []
    for lo, hi in z_bins:
        in_bin = (z > lo) & (z <= hi)
        recal, level, normalised, insts = {}, {}, {}, []
        for inst in instruments:
            m, s = table[f"m_{inst}"].to_numpy(), table[f"s_{inst}"].to_numpy()
            rows = in_bin & np.isfinite(m) & np.isfinite(s)
            if (
                rows.sum() < MIN_PER_BIN
                or np.corrcoef(m[rows], truth[rows])[0, 1] < MIN_CORRELATION
            ):
                continue  # too few clusters, or no information here: the bin goes without it
            b, a = np.polyfit(m[rows], truth[rows], 1)
            resid = np.full(len(z), np.nan)
            resid[rows] = (a + b * m[rows] - truth[rows]) / np.maximum(s[rows], 1e-4)
            recal[inst], level[inst] = (float(a), float(b)), float(np.nanstd(resid[rows]))
            normalised[inst] = resid / level[inst]
            insts.append(inst)
        if not insts:
            continue
        corr = np.eye(len(insts))
        for i, p in enumerate(insts):
            for j, q in enumerate(insts[:i]):
                both = np.isfinite(normalised[p]) & np.isfinite(normalised[q])
                if both.sum() >= MIN_PER_BIN:
                    c = np.corrcoef(normalised[p][both], normalised[q][both])[0, 1]
                    corr[i, j] = corr[j, i] = float(np.clip(c, -0.95, 0.95))
        bins.append(BinModel((lo, hi), insts, recal, level, corr))
    return bins


def _subsets(instruments: list[str]) -> list[list[str]]:
    n = len(instruments)
    return [
        [inst for k, inst in enumerate(instruments) if mask >> k & 1] for mask in range(1, 1 << n)
    ]


def _predict(params: JointParameters, table, instruments, calibrated=True):
    means = {i: table[f"m_{i}"].to_numpy() for i in instruments}
    sigmas = {i: table[f"s_{i}"].to_numpy() for i in instruments}
    return params.combine(table["z"].to_numpy(), means, sigmas, calibrated=calibrated)


def fit_joint(table: pd.DataFrame, instruments: list[str], z_bins) -> JointParameters:
    """Per-bin models on ``table``, then each combination's interval scales on its residuals."""
    params = JointParameters(_fit_bins(table, instruments, z_bins), {})
    truth = table["log10_m500"].to_numpy()
    for subset in _subsets(instruments):
        raw = _predict(params, table, subset, calibrated=False)
        ok = np.isfinite(raw.log10_m500)
        ratio = np.abs(raw.log10_m500[ok] - truth[ok]) / raw.sigma[ok]
        if ok.sum() >= MIN_PER_BIN:
            params.interval_scale[subset_key(subset)] = (
                float(np.quantile(ratio, ONE_SIGMA)),
                float(np.quantile(ratio, TWO_SIGMA)),
            )
    return params


def _scores(truth: np.ndarray, pred: np.ndarray, sigma=None, half95=None) -> dict:
    ok = np.isfinite(pred)
    out = fit_metrics(truth[ok], pred[ok]).as_dict()
    if sigma is not None:
        inside, _ = coverage(pred[ok], truth[ok], sigma[ok], half95_pred=half95[ok])
        out["coverage_68"], out["coverage_95"] = inside["68"], inside["95"]
    return out


def held_out_comparison(table: pd.DataFrame, instruments: list[str], spec: JointSpec) -> dict:
    """Cross-fitted joint masses against each instrument alone and the inverse-variance mean."""
    truth = table["log10_m500"].to_numpy()
    complete = np.all([np.isfinite(table[f"m_{i}"]) for i in instruments], axis=0)
    folds = mass_sorted_folds(truth, spec.folds)
    joint = {key: np.full(len(table), np.nan) for key in ("joint", "sigma", "half95")}
    alone = {i: np.full(len(table), np.nan) for i in instruments}
    for k in range(spec.folds):
        test = folds == k
        params = fit_joint(table[~test].reset_index(drop=True), instruments, spec.z_bins)
        part = table[test].reset_index(drop=True)
        got = _predict(params, part, instruments)
        joint["joint"][test], joint["sigma"][test], joint["half95"][test] = (
            got.log10_m500,
            got.sigma,
            got.half_width_95,
        )
        for i in instruments:
            alone[i][test] = _predict(params, part, [i]).log10_m500
    ivar = inverse_variance(
        {i: table[f"m_{i}"].to_numpy() for i in instruments},
        {i: table[f"s_{i}"].to_numpy() for i in instruments},
    )
    rows = complete  # every estimator on the same clusters
    out = {
        "clusters": "those with a mass from every instrument",
        "n": int(rows.sum()),
        "joint": _scores(
            truth[rows], joint["joint"][rows], joint["sigma"][rows], joint["half95"][rows]
        ),
        "inverse_variance": _scores(truth[rows], ivar.log10_m500[rows]),
        "alone_raw": {
            i: _scores(truth[rows], table[f"m_{i}"].to_numpy()[rows]) for i in instruments
        },
        "alone_recalibrated": {i: _scores(truth[rows], alone[i][rows]) for i in instruments},
    }
    best_raw = min(out["alone_raw"], key=lambda i: out["alone_raw"][i]["scatter"])
    best_recal = min(
        out["alone_recalibrated"], key=lambda i: out["alone_recalibrated"][i]["scatter"]
    )
    out["best_single_raw"], out["best_single_recalibrated"] = best_raw, best_recal
    out["beats_best_single"] = bool(
        out["joint"]["scatter"] < out["alone_raw"][best_raw]["scatter"]
        and out["joint"]["scatter"] < out["alone_recalibrated"][best_recal]["scatter"]
    )
    return out


def train_joint(spec: JointSpec, progress: bool = True) -> tuple[Path, dict]:
    """Weigh the clusters, cross-fit for metrics, fit on all, write the entry; (folder, metrics)."""
    from survey_mass.train.data import training_clusters
    from survey_mass.train.evaluate import write_metrics

    out = Path(spec.out)
    check_replaceable(out, spec.ensemble)
    instruments = [i for i in INSTRUMENTS if i in spec.members]
    truth = training_clusters(spec.universe, spec.n_clusters)
    table, versions = weigh_mock_clusters(
        spec.universe, truth, spec.members, spec.batch_size, progress
    )
    if not np.all([np.isfinite(table[f"m_{i}"]) for i in instruments], axis=0).any():
        raise UserError(
            f"no cluster of the joint universe got a mass from every one of {instruments}: "
            "widen [joint.universe] to where all ensembles apply"
        )
    comparison = held_out_comparison(table, instruments, spec)
    params = fit_joint(table, instruments, spec.z_bins)
    staging = staging_folder(out)
    (staging / MODEL_FILE).write_text(json.dumps(params.to_dict(), indent=2) + "\n")
    write_manifest(
        staging,
        spec.ensemble,
        JOINT,
        [{"file": MODEL_FILE}],
        fitted_on=versions,
        method="per z bin: linear recalibration of each instrument, then generalised least "
        "squares with per-cluster sigmas and the learned residual correlation",
        output="log10 M500c [Msun]; 68% and 95% half-widths [dex]",
        held_out=comparison,
        metrics=write_metrics(staging, comparison),
        training={
            "universe": spec.universe.model_dump(),
            "n_clusters": spec.n_clusters,
            "folds": spec.folds,
            "z_bins": [list(b) for b in spec.z_bins],
            "members": spec.members,
        },
    )
    return replace_entry(staging, out), comparison


def format_comparison(c: dict) -> str:
    """A plain-text table: joint, inverse variance and each instrument alone, on the same clusters."""
    lines = [
        f"held-out clusters with every instrument: {c['n']}",
        f"{'estimator':34s} {'bias':>7s} {'scatter':>7s} {'MAE':>6s}  [dex]",
    ]

    def line(name, m):
        extra = ""
        if "coverage_68" in m:
            extra = (
                f"  coverage 68%: {100 * m['coverage_68']:.1f}%, 95%: {100 * m['coverage_95']:.1f}%"
            )
        lines.append(f"{name:34s} {m['bias']:+7.3f} {m['scatter']:7.4f} {m['mae']:6.3f}{extra}")

    line("joint", c["joint"])
    line("inverse-variance mean", c["inverse_variance"])
    for i, m in c["alone_raw"].items():
        line(f"{i} alone (ensemble mass)", m)
    for i, m in c["alone_recalibrated"].items():
        line(f"{i} alone (recalibrated)", m)
    lines.append(f"joint beats the best single instrument: {c['beats_best_single']}")
    return "\n".join(lines)
