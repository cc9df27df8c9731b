"""Calibration maps: estimates and error bars that tell the truth in every bin a user selects on.

A zoo entry may carry ``calibration_map.json``, fitted by ``survey-mass calibrate`` on fresh mock
clusters drawn from the universe's mass function (the stated prior) and weighed by the production
path. Per redshift bin (``Z_BINS``) it holds

- the regression of true on estimated log mass, ``log M = a + b m``, plus median offsets in up to
  ten equal-count bins of the estimate, interpolated (together the posterior median under the
  prior: it removes the Eddington-like bias of an estimate that regresses to the mean, at fixed
  estimate, where users select);
- per quartile of the estimate (the cells a user's mass cut selects), conformal interval scales
  ``k68``, ``k95``: the 68.3% and 95% quantiles of ``|log M - (a + b m)| / sigma``, so each cell's
  intervals cover as nominal on the calibration clusters, whatever the model's own sigma says;
- whether the cell is *informative*: its calibrated 68% half-width is below ``INFORMATIVE`` x the
  prior's (the spread of true masses about their median in the redshift bin). An uninformative
  cell returns the prior (that median, and the 68%/95% distances from it) and a flag: a number that looks
  like a mass with a 0.1 dex error bar, but is nearly a constant, would mislead.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey_mass.constants import Z_BINS

MAP_NAME = "calibration_map.json"
MAP_VERSION = 1
#: a cell is informative when its 68% half-width is below this fraction of the prior's
INFORMATIVE = 0.9
#: cells with fewer calibration clusters take the redshift bin's interval scales
MIN_CELL = 20
QUARTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Applied:
    """Calibrated estimates: value, 68% and 95% half-widths [dex], and where the prior stands."""

    log10_m500: np.ndarray
    sigma: np.ndarray
    half_width_95: np.ndarray
    prior: np.ndarray  # bool: the cell was uninformative, the values are the prior's


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else math.nan


def _prior(truth: np.ndarray) -> dict:
    """The prior of a redshift bin: median true mass and the 68.3%/95% quantiles of the distance
    from it (the same statistic the cells' widths are, so "no narrower" compares like with like)."""
    median = float(np.median(truth))
    distance = np.abs(truth - median)
    return {
        "p50": median,
        "half68": _quantile(distance, 0.6827),
        "half95": _quantile(distance, 0.95),
        "n": int(len(truth)),
    }


def _cells_of(m: np.ndarray, edges) -> list[np.ndarray]:
    """Masks of the estimate's quartiles (the last one closed)."""
    return [
        (m >= edges[q]) & ((m <= edges[q + 1]) if q == 3 else (m < edges[q + 1])) for q in range(4)
    ]


def shift_nodes(m: np.ndarray, residual: np.ndarray) -> list[list[float]]:
    """(centre, median residual) of equal-count bins of the estimate, up to 10 of >= 40 each:
    E[log M | m] is not linear under a steep prior, so a median offset from the line, interpolated
    between bin centres, keeps the calibrated mass unbiased and monotonic in m."""
    n_bins = int(np.clip(len(m) // 40, 1, 10))
    order = np.argsort(m)
    return [
        [float(np.median(m[part])), float(np.median(residual[part]))]
        for part in np.array_split(order, n_bins)
    ]


def _fit_cells(m, sigma, residual, edges, prior_half68) -> list[dict]:
    """Interval scales and informativeness of each estimated-mass quartile of one z bin."""
    ratio = np.abs(residual) / sigma
    cells = []
    for mask in _cells_of(m, edges):
        inside = ratio[mask] if mask.sum() >= MIN_CELL else ratio
        k68, k95 = _quantile(inside, 0.6827), _quantile(inside, 0.95)
        half68 = float(np.median(k68 * sigma[mask])) if mask.any() else math.inf
        cells.append(
            {
                "n": int(mask.sum()),
                "k68": k68,
                "k95": k95,
                "informative": bool(half68 < INFORMATIVE * prior_half68),
            }
        )
    return cells


def _shift(nodes: list[list[float]], m: np.ndarray) -> np.ndarray:
    centres, shifts = np.array(nodes).T
    return np.interp(m, centres, shifts)


def fit_map(z, m, sigma, truth, fitted_on: dict) -> dict:
    """The calibration map (a JSON-able dict) of one estimate from calibration clusters."""
    z, m, sigma, truth = (np.asarray(v, dtype=float) for v in (z, m, sigma, truth))
    bins = []
    for lo, hi in Z_BINS:
        in_z = (z >= lo) & ((z < hi) if hi < Z_BINS[-1][1] else (z <= hi))
        prior = _prior(truth[in_z]) if in_z.any() else None
        ok = in_z & np.isfinite(m) & np.isfinite(sigma) & (sigma > 0)
        if prior is None or ok.sum() < MIN_CELL:
            bins.append({"z_bin": [lo, hi], "n": int(ok.sum()), "usable": False})
            continue
        b, a = np.polyfit(m[ok], truth[ok], 1)
        edges = [float(e) for e in np.quantile(m[ok], QUARTILES)]
        line = truth[ok] - (a + b * m[ok])
        nodes = shift_nodes(m[ok], line)
        residual = line - _shift(nodes, m[ok])
        bins.append(
            {
                "z_bin": [lo, hi],
                "n": int(ok.sum()),
                "usable": True,
                "a": float(a),
                "b": float(b),
                "est_edges": edges,
                "shift_nodes": nodes,
                "prior": prior,
                "cells": _fit_cells(m[ok], sigma[ok], residual, edges, prior["half68"]),
            }
        )
    return {"map_version": MAP_VERSION, "fitted_on": fitted_on, "z_bins": _borrowed(bins)}


def _borrowed(bins: list[dict]) -> list[dict]:
    """A z bin with too few calibration clusters (the smallest volume, z < 0.1) takes the
    nearest fitted bin's map, saying so, rather than leaving its clusters without a mass."""
    fitted = [i for i, b in enumerate(bins) if b["usable"]]
    if not fitted:
        return bins
    out = []
    for i, b in enumerate(bins):
        if b["usable"]:
            out.append(b)
            continue
        near = bins[min(fitted, key=lambda j: abs(j - i))]
        out.append({**near, "z_bin": b["z_bin"], "n": b["n"], "borrowed_from": near["z_bin"]})
    return out


class CalibrationMap:
    def __init__(self, data: dict):
        if data.get("map_version") != MAP_VERSION:
            raise ValueError(f"calibration map version {data.get('map_version')} is not readable")
        self.data = data
        self.bins = data["z_bins"]

    @classmethod
    def read(cls, path: str | os.PathLike) -> CalibrationMap:
        return cls(json.loads(Path(path).read_text()))

    def apply(self, z, m, sigma) -> Applied:
        """Calibrated values; rows outside every usable z bin keep NaN (no calibrated claim)."""
        z, m, sigma = (np.asarray(v, dtype=float) for v in (z, m, sigma))
        out = [np.full(len(z), np.nan) for _ in range(3)]
        prior_flag = np.zeros(len(z), dtype=bool)
        last = Z_BINS[-1][1]
        for spec in self.bins:
            lo, hi = spec["z_bin"]
            rows = np.flatnonzero((z >= lo) & ((z < hi) if hi < last else (z <= hi)))
            rows = rows[np.isfinite(m[rows])]
            if not spec["usable"] or not len(rows):
                continue
            cell = np.clip(np.searchsorted(spec["est_edges"][1:-1], m[rows], side="right"), 0, 3)
            k68 = np.array([c["k68"] for c in spec["cells"]])[cell]
            k95 = np.array([c["k95"] for c in spec["cells"]])[cell]
            informative = np.array([c["informative"] for c in spec["cells"]])[cell]
            shift = _shift(spec["shift_nodes"], m[rows])
            p = spec["prior"]
            value = np.where(informative, spec["a"] + spec["b"] * m[rows] + shift, p["p50"])
            half68 = np.where(informative, k68 * sigma[rows], p["half68"])
            half95 = np.where(informative, k95 * sigma[rows], p["half95"])
            out[0][rows], out[1][rows], out[2][rows] = value, half68, half95
            prior_flag[rows] = ~informative
        return Applied(out[0], out[1], out[2], prior_flag)


_LOADED: dict[str, CalibrationMap | None] = {}


def load_map(entry_path: str | os.PathLike, manifest: dict) -> CalibrationMap | None:
    """The map the entry's manifest lists (hash-checked, read once per process), or None."""
    listing = manifest.get("calibration_map")
    if not listing:
        return None
    key = f"{entry_path}:{listing['sha256']}"
    if key not in _LOADED:
        from survey_mass.zoo.manifest import ModelIntegrityError, sha256_file

        path = Path(entry_path) / listing["file"]
        if not path.is_file() or sha256_file(path) != listing["sha256"]:
            raise ModelIntegrityError(
                f"{path} is missing or fails its sha256 check; re-run survey-mass calibrate"
            )
        _LOADED[key] = CalibrationMap.read(path)
    return _LOADED[key]
