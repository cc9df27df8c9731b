"""The evaluation on what survey users select: PSZ2-like and redMaPPer-like detections.

A model's numbers over the whole mass function are dominated by small clusters no survey detects.
Users of SZ masses hold Planck detections (S/N >= 4.5) and users of optical masses hold redMaPPer
clusters (lambda >= 20), so each instrument is also scored on the mock survey's own detection
catalogs of the same sky, against the baseline those catalogs offer:

- SZ: Planck's MSZ (the mass from the measured aperture Y5R500), recalibrated to true mass;
- optical: the redMaPPer richness lambda, recalibrated to true mass.

The mock PSZ2's noise is drawn apart from the y cutouts' (a real PSZ2 S/N and a MILCA cutout
share their noise), so a quarter of its detections sit below S/N 4 in their own cutout, where
no y-map estimator can see them. SZ is therefore also scored on its own detections, the rows
whose catalog ``sz_snr`` (the cutout's matched filter) is >= 4.5, which a user of this catalog
selects on, against the matched-filter S/N of the same map (log ``sz_snr``, recalibrated: a Y
over its noise).

"Recalibrated" is a line log M_true = a + b log(observable) per redshift bin, cross-fitted (each
half of the clusters scored with the line fitted on the other half), so the baseline is as
unbiased as the data allow and its scatter is the honest scatter of the observable; the ratio
std(model) / std(baseline) on the same clusters is the number the issue's goals name.

Where two or more instruments are informative (no prior flag) at z < 0.4, the joint mass's rms
error is compared with the best single instrument's on the same clusters.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Planck's PSZ2 threshold and redMaPPer's richness cut
PSZ2_SNR_MIN = 4.5
REDMAPPER_LAMBDA_MIN = 20.0
#: detection z bins: the SZ bins to 0.6, where PSZ2 still has clusters
DETECTION_Z_BINS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 0.6))
JOINT_Z_MAX = 0.4


def cross_fitted_baseline(log_observable: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each cluster's baseline mass from a line fitted on the other half (alternate rows)."""
    pred = np.full(truth.size, np.nan)
    halves = np.arange(truth.size) % 2
    for half in (0, 1):
        fit, score = halves != half, halves == half
        if fit.sum() < 3 or np.ptp(log_observable[fit]) == 0:
            continue
        slope, offset = np.polyfit(log_observable[fit], truth[fit], 1)
        pred[score] = offset + slope * log_observable[score]
    return pred


def _row(label: str, delta: np.ndarray, baseline: np.ndarray, half: np.ndarray) -> dict:
    """Scores of one bin; ``half`` holds the model's 68% and 95% half-widths, (2, n)."""
    ok = np.isfinite(delta) & np.isfinite(baseline)
    delta, baseline, half = delta[ok], baseline[ok], half[:, ok]
    n = int(delta.size)
    std = float(delta.std(ddof=1)) if n > 2 else math.nan
    base_std = float(baseline.std(ddof=1)) if n > 2 else math.nan
    return {
        "bin": label,
        "n": n,
        "median_dex": float(np.median(delta)) if n else math.nan,
        "std_dex": std,
        "baseline_std_dex": base_std,
        "ratio": std / base_std if n > 2 and base_std > 0 else math.nan,
        "coverage_68": float(np.mean(np.abs(delta) <= half[0])) if n else math.nan,
        "coverage_95": float(np.mean(np.abs(delta) <= half[1])) if n else math.nan,
    }


def detection_table(
    joined: pd.DataFrame, detections: pd.DataFrame, est: str, observable: str
) -> list[dict]:
    """Per detection z bin: the model's and the baseline's errors on the same detected clusters.

    ``detections`` holds target_id and ``observable`` (> 0) of the detected clusters; ``joined``
    the catalog with true masses.
    """
    column = f"logm500_{est}"
    rows = []
    frame = joined.merge(detections[["target_id", observable]], on="target_id", how="inner")
    frame = frame[np.isfinite(frame[column].to_numpy(float))]
    frame = frame[frame[observable].to_numpy(float) > 0].sort_values("target_id")
    z = frame["z"].to_numpy(float)
    for lo, hi in ((0.0, DETECTION_Z_BINS[-1][1]), *DETECTION_Z_BINS):
        part = frame[(z >= lo) & (z < hi)]
        truth = part["log10_m500"].to_numpy(float)
        baseline = np.full(len(part), np.nan)
        pz = part["z"].to_numpy(float)
        for blo, bhi in DETECTION_Z_BINS:  # the baseline's line is fitted per z bin
            inside = (pz >= blo) & (pz < bhi)
            baseline[inside] = cross_fitted_baseline(
                np.log10(part[observable].to_numpy(float)[inside]), truth[inside]
            )
        label = "all" if (lo, hi) == (0.0, DETECTION_Z_BINS[-1][1]) else f"z {lo:g}-{hi:g}"
        half = part[[f"{column}_sigma", f"{column}_half95"]].to_numpy(float).T
        rows.append(_row(label, part[column].to_numpy(float) - truth, baseline - truth, half))
    return rows


def joint_gain(joined: pd.DataFrame, instruments: list[str]) -> dict:
    """rms errors of the joint mass and of each instrument where >= 2 are informative, z < 0.4."""
    from survey_mass.catalog.schema import FLAG_PRIOR

    flags = joined["flags"].to_numpy() if "flags" in joined else np.zeros(len(joined), int)
    informative = {
        i: np.isfinite(joined[f"logm500_{i}"].to_numpy(float)) & ((flags & FLAG_PRIOR[i]) == 0)
        for i in instruments
        if f"logm500_{i}" in joined
    }
    count = sum(informative.values()) if informative else np.zeros(len(joined), int)
    keep = (count >= 2) & (joined["z"].to_numpy(float) < JOINT_Z_MAX)
    keep &= np.isfinite(joined["logm500"].to_numpy(float))
    truth = joined["log10_m500"].to_numpy(float)[keep]

    def rms(values: np.ndarray) -> float:
        delta = values[np.isfinite(values)] - truth[np.isfinite(values)]
        return float(np.sqrt(np.mean(delta**2))) if delta.size else math.nan

    singles = {}
    for i, mask in informative.items():
        values = np.where(mask[keep], joined[f"logm500_{i}"].to_numpy(float)[keep], np.nan)
        if np.isfinite(values).sum() == keep.sum() and keep.any():  # every cluster, same set
            singles[i] = rms(values)
    best = min(singles, key=singles.get) if singles else None
    joint = rms(joined["logm500"].to_numpy(float)[keep]) if keep.any() else math.nan
    return {
        "n": int(keep.sum()),
        "joint_rms_dex": joint,
        "single_rms_dex": singles,
        "best_single": best,
        "ratio": joint / singles[best] if best else math.nan,
    }


def own_sz_detections(joined: pd.DataFrame) -> dict:
    """SZ on the rows whose own matched-filter S/N is >= 4.5, against that S/N's Y."""
    own = joined.loc[joined["sz_snr"].to_numpy(float) >= PSZ2_SNR_MIN, ["target_id", "sz_snr"]]
    return {
        "title": "sz on its own detections",
        "selection": f"sz_snr >= {PSZ2_SNR_MIN}",
        "baseline": "the matched-filter S/N of the same y map (log sz_snr), recalibrated",
        "rows": detection_table(joined.drop(columns="sz_snr"), own, "sz", "sz_snr"),
    }


def detection_tables(joined: pd.DataFrame, universe, footprint, instruments: list[str]) -> dict:
    """The detection tables of the instruments that have them, and the joint gain."""
    from survey_mass.mock.external import mock_psz, mock_redmapper

    out: dict = {}
    if "sz" in instruments and "sz_snr" in joined:
        out["sz_own"] = own_sz_detections(joined)
    if "sz" in instruments:
        psz = mock_psz(universe, footprint)
        psz = psz[psz["SNR"] >= PSZ2_SNR_MIN].assign(MSZ=lambda d: d["MSZ"] * 1e14)
        out["sz"] = {
            "selection": f"mock PSZ2, S/N >= {PSZ2_SNR_MIN}",
            "baseline": "MSZ (from aperture Y5R500), recalibrated",
            "rows": detection_table(joined, psz, "sz", "MSZ"),
        }
    if "optical" in instruments:
        rm = mock_redmapper(universe, footprint)
        rm = rm[rm["lambda"] >= REDMAPPER_LAMBDA_MIN]
        out["optical"] = {
            "selection": f"mock redMaPPer, lambda >= {REDMAPPER_LAMBDA_MIN:g}",
            "baseline": "richness lambda, recalibrated",
            "rows": detection_table(joined, rm, "optical", "lambda"),
        }
    if len(instruments) > 1 and "logm500" in joined:
        out["joint_gain"] = joint_gain(joined, instruments)
    return out


def detection_markdown(detections: dict, fmt) -> list[str]:
    """Markdown lines of :func:`detection_tables`' result; ``fmt`` formats a number."""
    lines: list[str] = []
    for key in ("sz", "sz_own", "optical"):
        if key not in detections:
            continue
        d = detections[key]
        title = d.get("title", f"{key} on detections")
        lines += [
            f"**{title}** ({d['selection']}; baseline: {d['baseline']})",
            "",
            "| bin | n | median | std | 68% | 95% | baseline std | ratio |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in d["rows"]:
            lines.append(
                f"| {r['bin']} | {r['n']} | {fmt(r['median_dex'])} | "
                f"{fmt(r['std_dex'], sign=False)} | {fmt(r['coverage_68'], 2, False)} | "
                f"{fmt(r['coverage_95'], 2, False)} | {fmt(r['baseline_std_dex'], sign=False)} | "
                f"{fmt(r['ratio'], 2, False)} |"
            )
        lines.append("")
    if "joint_gain" in detections:
        g = detections["joint_gain"]
        singles = ", ".join(f"{k} {fmt(v, sign=False)}" for k, v in g["single_rms_dex"].items())
        lines += [
            f"**Joint gain** (z < {JOINT_Z_MAX:g}, two or more informative instruments, "
            f"n = {g['n']}): joint rms {fmt(g['joint_rms_dex'], sign=False)} dex; singles "
            f"{singles or '-'}; joint / best single = {fmt(g['ratio'], 2, False)}",
            "",
        ]
    return lines
