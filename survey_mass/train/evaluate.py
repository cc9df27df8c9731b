"""Held-out metrics of a zoo ensemble against its summary-statistic baseline, per redshift bin.

The CNN's numbers are its cross-validation test-fold predictions (``test_ids`` / ``test_pred`` of
each member's fold record): every cluster is predicted by the member that never saw it. The
baseline (core-excised L_X, aperture Y or richness, ``validate.baselines``) is measured on the
same clusters' cutouts and its scaling relation is fitted, fold by fold, on that fold's
non-test clusters only (the member's training and validation clusters), then predicts the test
fold. Residuals delta = log M_pred - log M_true [dex] are summarised per ``Z_BINS`` bin and overall
by bias (mean), scatter (std, and sigma of a Gaussian fitted to the histogram as in Ntampaka et al.
2019), and MAE, and the CNN is judged against the targets of issue 6.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from scipy.optimize import curve_fit

from survey_mass.constants import Z_BINS
from survey_mass.mock.source import RENDERERS
from survey_mass.mock.universe import UniverseSpec, cluster
from survey_mass.train.criteria import fit_metrics
from survey_mass.train.data import TAIL_ID_PREFIX, training_clusters
from survey_mass.validate.baselines import Baseline, make_baseline
from survey_mass.zoo.manifest import rewrite_manifest, sha256_file, verify_manifest

METRICS_NAME = "metrics.json"
#: CNN scatter must be at most this fraction of its baseline's (issue 6)
TARGET_SCATTER_RATIO = {"xray": 0.8, "sz": 0.8, "optical": 0.9}
TARGET_ABS_BIAS = 0.02  # dex
#: fewer residuals than this get no Gaussian fit (the histogram would be mostly empty bins)
MIN_GAUSSIAN_FIT = 50


def gaussian_fit(delta: np.ndarray) -> tuple[float, float]:
    """(mu, sigma) of a Gaussian least-squares fitted to the histogram of ``delta``.

    The histogram spans median +- 4 robust sigmas in sqrt(n) bins, so outliers (catastrophic
    mis-centring, the tails the X-ray paper's fit ignores) do not inflate sigma as they do the std.
    NaN for fewer than ``MIN_GAUSSIAN_FIT`` values or a fit that does not converge.
    """
    delta = np.asarray(delta, dtype=float)
    if delta.size < MIN_GAUSSIAN_FIT:
        return math.nan, math.nan
    centre = float(np.median(delta))
    robust = 1.4826 * float(np.median(np.abs(delta - centre))) or float(delta.std()) or 1e-6
    counts, edges = np.histogram(
        delta,
        bins=max(8, int(np.sqrt(delta.size))),
        range=(centre - 4 * robust, centre + 4 * robust),
    )
    mids = 0.5 * (edges[1:] + edges[:-1])

    def gauss(x, amplitude, mu, sigma):
        return amplitude * np.exp(-0.5 * ((x - mu) / sigma) ** 2)

    try:
        (_, mu, sigma), _ = curve_fit(gauss, mids, counts, p0=(counts.max(), centre, robust))
    except RuntimeError:
        return math.nan, math.nan
    return float(mu), float(abs(sigma))


def residual_metrics(log_true, log_pred) -> dict:
    """n, bias, median, scatter (std), Gaussian-fit mu and sigma, MAE of delta [dex]."""
    log_true, log_pred = np.asarray(log_true, float), np.asarray(log_pred, float)
    if log_true.size == 0:
        return {"n": 0}
    m = fit_metrics(log_true, log_pred)
    mu, sigma = gaussian_fit(log_pred - log_true)
    return {
        "n": m.n,
        "bias": m.bias,
        "median": m.median,
        "scatter": m.scatter,
        "gauss_mu": mu,
        "gauss_sigma": sigma,
        "mae": m.mae,
    }


@dataclass(frozen=True)
class HeldOutGroup:
    """Clusters trained on together: their universe, how many were drawn, their fold records."""

    universe: UniverseSpec
    n_clusters: int
    records: list[dict]


def held_out_table(
    truth: pd.DataFrame,
    records: Sequence[dict],
    new_baseline: Callable[[], Baseline],
    cutout: Callable[[str], fits.HDUList],
) -> pd.DataFrame:
    """Per held-out cluster: z, true log M, the CNN's test-fold prediction and the baseline's.

    ``truth`` (target_id, z, log10_m500) holds every cluster the ensemble was trained on (each is
    in one test fold); the baseline of fold k is fitted on truth minus fold k's test clusters.
    """
    truth = truth.set_index("target_id")
    hduls: dict[str, fits.HDUList] = {}

    def cutouts(ids) -> list[fits.HDUList]:
        for target_id in ids:
            if target_id not in hduls:
                hduls[target_id] = cutout(target_id)
        return [hduls[t] for t in ids]

    parts = []
    for record in records:
        test = list(record["test_ids"])
        unknown = sorted(set(test) - set(truth.index))
        if unknown:
            raise ValueError(
                f"fold record {record.get('file', '?')} tests clusters {unknown[:3]} that are not "
                "in the training truth: the entry was trained on another universe or size"
            )
        fit_ids = truth.index.difference(test)
        baseline = new_baseline().fit(
            cutouts(fit_ids), truth.loc[fit_ids, "z"], truth.loc[fit_ids, "log10_m500"]
        )
        rows = truth.loc[test]
        parts.append(
            pd.DataFrame(
                {
                    "target_id": test,
                    "z": rows["z"].to_numpy(),
                    "log10_m500": rows["log10_m500"].to_numpy(),
                    "cnn": np.asarray(record["test_pred"], dtype=float),
                    "baseline": baseline.predict(cutouts(test), rows["z"].to_numpy()),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _comparison(table: pd.DataFrame, ratio_target: float) -> dict:
    cnn = residual_metrics(table["log10_m500"], table["cnn"])
    base = residual_metrics(table["log10_m500"], table["baseline"])
    out = {"cnn": cnn, "baseline": base}
    if cnn["n"] >= 2 and base.get("scatter"):
        out["scatter_ratio"] = cnn["scatter"] / base["scatter"]
        out["gauss_sigma_ratio"] = cnn["gauss_sigma"] / base["gauss_sigma"]
        out["meets_scatter_target"] = bool(out["scatter_ratio"] <= ratio_target)
        out["meets_bias_target"] = bool(abs(cnn["bias"]) < TARGET_ABS_BIAS)
    return out


def summarise(table: pd.DataFrame, ensemble: str, instrument: str, baseline_name: str) -> dict:
    """Metrics of the CNN and its baseline per redshift bin (lo, hi] and overall."""
    ratio = TARGET_SCATTER_RATIO[instrument]
    z = table["z"].to_numpy()
    return {
        "ensemble": ensemble,
        "instrument": instrument,
        "baseline": baseline_name,
        "residual": "log10 M_pred - log10 M_true [dex], cross-validation test folds",
        "targets": {"scatter_ratio_max": ratio, "abs_bias_max": TARGET_ABS_BIAS},
        "overall": _comparison(table, ratio),
        "z_bins": [
            {"z_bin": [lo, hi], **_comparison(table[(z > lo) & (z <= hi)], ratio)}
            for lo, hi in Z_BINS
        ],
    }


def mass_function_part(record: dict) -> dict:
    """A fold record without its tail clusters: held-out metrics describe the mass-function
    population a survey weighs, not the massive clusters added to train on."""
    keep = [i for i, t in enumerate(record["test_ids"]) if not t.startswith(TAIL_ID_PREFIX)]
    if len(keep) == len(record["test_ids"]):
        return record
    return {
        **record,
        "test_ids": [record["test_ids"][i] for i in keep],
        "test_pred": [record["test_pred"][i] for i in keep],
    }


def evaluate_groups(
    ensemble: str,
    instrument: str,
    groups: Sequence[HeldOutGroup],
    new_baseline: Callable[[], Baseline] | None = None,
) -> dict:
    """Re-simulate each group's training clusters, then summarise CNN and baseline together."""
    new_baseline = new_baseline or (lambda: make_baseline(instrument))
    render = RENDERERS[instrument]
    tables = []
    for group in groups:
        truth = training_clusters(group.universe, group.n_clusters)
        records = [mass_function_part(r) for r in group.records]
        tested = {t for r in records for t in r["test_ids"]}
        truth = truth[truth["target_id"].isin(tested)]  # clusters whose cutouts passed

        def cutout(target_id: str, spec: UniverseSpec = group.universe) -> fits.HDUList:
            return render(cluster(spec, target_id), spec.seed)

        tables.append(held_out_table(truth, records, new_baseline, cutout))
    return summarise(
        pd.concat(tables, ignore_index=True), ensemble, instrument, new_baseline().name
    )


def entry_groups(path: str | Path) -> list[HeldOutGroup]:
    """The held-out groups of a zoo entry: members' fold records (``<member stem>.json``) grouped
    by training universe (a member's own ``universe`` / ``n_clusters``, else the manifest's
    ``training``)."""
    path = Path(path)
    manifest = verify_manifest(path)
    training = manifest.get("training", {})
    groups: dict[str, HeldOutGroup] = {}
    for member in manifest["members"]:
        record_path = (path / member["file"]).with_suffix(".json")
        if not record_path.is_file():
            raise FileNotFoundError(
                f"{record_path} (the fold record of {member['file']}) is missing: held-out "
                "predictions are needed to evaluate the entry; retrain it with `survey-mass train`"
            )
        universe = member.get("universe", training.get("universe"))
        n_clusters = member.get("n_clusters", training.get("n_clusters"))
        if universe is None or n_clusters is None:
            raise ValueError(f"{path}: manifest says neither the training universe nor its size")
        key = json.dumps([universe, n_clusters], sort_keys=True)
        group = groups.setdefault(key, HeldOutGroup(UniverseSpec(**universe), n_clusters, []))
        group.records.append(json.loads(record_path.read_text()))
    return list(groups.values())


def calibrate_entry(path: str | Path) -> dict:
    """Recalibrate a finished entry's sigmas from its fold records, without retraining.

    Calibration is on the validation folds and coverage is measured on the test folds (never seen
    by the member that predicts them), per training group: each redshift bin of a ``by_z_bin``
    entry gets its own sigma and 95% half-width. The manifest is rewritten; members are untouched,
    so their hashes (and the joint model fitted on them) stay valid. Returns the calibration.
    """
    from survey_mass.train.ensemble import calibrate, held_out_frames

    path = Path(path)
    manifest = verify_manifest(path)
    z_bin_of = {m["file"]: m.get("z_bin") for m in manifest["members"]}
    per_group = []
    for group in entry_groups(path):
        truth = training_clusters(group.universe, group.n_clusters)
        val, test = held_out_frames(group.records, truth)
        z_bin = z_bin_of[group.records[0]["file"]]
        per_group.append({"z_bin": z_bin, **calibrate(val, test)})
    if len(per_group) == 1:
        calibration = {k: v for k, v in per_group[0].items() if k != "z_bin"}
    else:
        n = np.array([g["n_test"] for g in per_group], dtype=float)
        calibration = {
            "kind": "per_z_bin",
            "z_bins": per_group,
            "coverage_68": float(np.average([g["coverage_68"] for g in per_group], weights=n)),
            "coverage_95": float(np.average([g["coverage_95"] for g in per_group], weights=n)),
            "n_validation": int(sum(g["n_validation"] for g in per_group)),
            "n_test": int(n.sum()),
        }
    rewrite_manifest(path, manifest, calibration=calibration)
    return calibration


def evaluate_entry(path: str | Path) -> dict:
    """Metrics of a finished zoo entry, without retraining, written to its ``metrics.json``.

    The manifest is rewritten with the new file's hash, which loading then checks.
    """
    manifest = verify_manifest(path)
    summary = evaluate_groups(manifest["ensemble"], manifest["instrument"], entry_groups(path))
    reference = write_metrics(path, summary)
    if manifest.get("metrics") != reference:
        rewrite_manifest(path, manifest, metrics=reference)
    return summary


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_metrics(directory: str | Path, summary: dict) -> dict:
    """Write ``metrics.json`` (NaN as null); returns {"file", "sha256"} for the manifest."""
    path = Path(directory) / METRICS_NAME
    path.write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    return {"file": METRICS_NAME, "sha256": sha256_file(path)}


def format_metrics(summary: dict) -> str:
    """A plain-text table of the summary, one row per redshift bin and one overall."""

    def cells(m: dict) -> str:
        if not m.get("n"):
            return f"{'-':>7s} {'-':>6s} {'-':>6s} {'-':>6s}"
        gauss = m.get("gauss_sigma")
        gauss = "-" if gauss is None or not math.isfinite(gauss) else f"{gauss:.3f}"
        return f"{m['bias']:+7.3f} {m['scatter']:6.3f} {gauss:>6s} {m['mae']:6.3f}"

    def row(label: str, c: dict) -> str:
        ratio = c.get("scatter_ratio")
        verdict = (
            "-"
            if ratio is None
            else f"{ratio:4.2f} {'ok' if c['meets_scatter_target'] else 'MISSED'}"
            f"/{'ok' if c['meets_bias_target'] else 'BIASED'}"
        )
        return f"{label:9s} {c['cnn']['n']:5d}  {cells(c['cnn'])}  | {cells(c['baseline'])}  | {verdict}"

    t = summary["targets"]
    lines = [
        f"{summary['ensemble']}: held-out clusters, CNN vs {summary['baseline']} (targets: CNN "
        f"scatter <= {t['scatter_ratio_max']:.1f}x baseline, |bias| < {t['abs_bias_max']} dex)",
        f"{'z bin':9s} {'n':>5s}  {'bias':>7s} {'std':>6s} {'gauss':>6s} {'MAE':>6s}  | "
        f"{'bias':>7s} {'std':>6s} {'gauss':>6s} {'MAE':>6s}  | ratio scatter/bias",
    ]
    for b in summary["z_bins"]:
        lines.append(row(f"{b['z_bin'][0]:g}-{b['z_bin'][1]:g}", b))
    lines.append(row("all", summary["overall"]))
    return "\n".join(lines)
