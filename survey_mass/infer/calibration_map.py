"""Calibration maps: estimates and error bars that tell the truth in every bin a user selects on.

A zoo entry may carry ``calibration_map.json``, fitted by ``survey-mass calibrate`` on fresh mock
clusters drawn from the universe's mass function (the stated prior) and weighed by the production
path. Per redshift bin (``Z_BINS``) it holds

- a line ``log M = a + b m`` in the estimate m (fitted on its top quarter, where the map
  extrapolates), plus median offsets in up to 20 equal-count bins of the estimate, interpolated
  (together the posterior median under the prior: it removes the Eddington-like bias of an
  estimate that regresses to the mean, at fixed estimate, where users select);
- per cell of the estimate (its quartiles, then the top decile cut into cells of ~50 calibration
  clusters, where the massive clusters are that an instrument may weigh although its bulk cannot:
  the cells a user's mass cut selects), conformal interval scales ``k68``, ``k95``: the 68.3% and
  95% quantiles of ``|log M - curve(m)| / sigma``, the curve (line and offsets) fitted without
  the cluster (cross-fitted), so each cell's intervals cover as nominal on
  clusters the map never saw, whatever the model's own sigma says;
- whether the cell is *informative*: its calibrated 68% half-width is below ``INFORMATIVE`` x the
  prior's (the spread of true masses about their median in the redshift bin). An uninformative
  cell returns the prior (that median, and the 68%/95% distances from it) and a flag: a number
  that looks like a mass with a 0.1 dex error bar, but is nearly a constant, would mislead.

The calibration clusters may be a stratified sample: each carries a weight (the cone of the mass
function at 1, the rare massive clusters drawn from a wider cone at the ratio of the areas), and
every median, quantile and line is weighted, so the map is the mass function's while its massive
end is measured on hundreds of clusters instead of a few.
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
#: a cell is informative when its 68% half-width is below this fraction of the prior's, by more
#: than ``MARGIN_SIGMAS`` times the width's statistical uncertainty
INFORMATIVE = 0.9
#: (one-sided, ~4% of uninformative cells pass by luck; a map has ~30 cells)
MARGIN_SIGMAS = 1.75
#: a cell with fewer calibration clusters takes its interval scales from it and its neighbours
MIN_CELL = 50
#: a redshift bin with fewer calibration clusters borrows its neighbour's map
MIN_BIN = 20
#: cell edges, as quantiles of the estimate: quartiles, then the top decile ...
CELL_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9)
#: ... which is cut into cells of this many calibration clusters each (at most ``MAX_TOP_CELLS``):
#: a stratified sample holds hundreds of massive clusters there, whose estimates span a decade of
#: mass that one cell would lump together
TOP_CELL, MAX_TOP_CELLS = 50, 6
#: equal-count bins of this many clusters (at most ``MAX_NODES``) give the median shift nodes
NODE_ROWS, MAX_NODES = 40, 20
#: folds of the cross-fitted residuals that set the interval scales
CROSS_FOLDS = 5


@dataclass(frozen=True)
class Applied:
    """Calibrated estimates: value, 68% and 95% half-widths [dex], and where the prior stands."""

    log10_m500: np.ndarray
    sigma: np.ndarray
    half_width_95: np.ndarray
    prior: np.ndarray  # bool: the cell was uninformative, the values are the prior's


def _quantile(values: np.ndarray, q, weight: np.ndarray | None = None):
    """The (weighted) quantile(s) ``q`` of ``values``; NaN when there are none."""
    values = np.asarray(values, float)
    if not len(values):
        return math.nan if np.ndim(q) == 0 else np.full(np.shape(q), math.nan)
    if weight is None:
        out = np.quantile(values, q)
    else:
        order = np.argsort(values, kind="stable")
        v, w = values[order], np.asarray(weight, float)[order]
        position = (np.cumsum(w) - 0.5 * w) / w.sum()
        out = np.interp(q, position, v)
    return float(out) if np.ndim(q) == 0 else np.asarray(out, float)


def _prior(truth: np.ndarray, weight: np.ndarray | None = None) -> dict:
    """The prior of a redshift bin: median true mass and the 68.3%/95% quantiles of the distance
    from it (the same statistic the cells' widths are, so "no narrower" compares like with like)."""
    median = _quantile(truth, 0.5, weight)
    distance = np.abs(truth - median)
    return {
        "p50": median,
        "half68": _quantile(distance, 0.6827, weight),
        "half95": _quantile(distance, 0.95, weight),
        "n": int(len(truth)),
    }


def _cell_index(m: np.ndarray, edges) -> np.ndarray:
    """Each estimate's cell (the last one closed above; beyond the edges, the outer cells)."""
    return np.clip(np.searchsorted(np.asarray(edges)[1:-1], m, side="right"), 0, len(edges) - 2)


def shift_nodes(
    m: np.ndarray, residual: np.ndarray, weight: np.ndarray | None = None
) -> list[list[float]]:
    """(centre, median residual) of equal-count bins of the estimate, up to ``MAX_NODES`` of
    >= ``NODE_ROWS`` each: E[log M | m] is not linear under a steep prior, so a median offset from the line,
    interpolated between bin centres, keeps the calibrated mass unbiased and monotonic in m."""
    n_bins = int(np.clip(len(m) // NODE_ROWS, 1, MAX_NODES))
    order = np.argsort(m)
    w = np.ones(len(m)) if weight is None else np.asarray(weight, float)
    return [
        [_quantile(m[part], 0.5, w[part]), _quantile(residual[part], 0.5, w[part])]
        for part in np.array_split(order, n_bins)
    ]


def _n_eff(weight: np.ndarray) -> float:
    """Kish's effective number of clusters of a weighted sample."""
    return float(weight.sum() ** 2 / (weight**2).sum()) if len(weight) else 0.0


def _fit_cells(m, sigma, residual, edges, prior_half68, weight) -> list[dict]:
    """Interval scales and informativeness of each cell of the estimate in one z bin."""
    ratio = np.abs(residual) / sigma
    cell = _cell_index(m, edges)
    cells = []
    for k in range(len(edges) - 1):
        mask = cell == k
        # a small cell's scales come from it and its neighbours, lower ones first; small in
        # effective clusters, as a few bulk clusters among many down-weighted massive ones count
        # for most of a cell's weight and would set its quantiles alone
        lo, hi = k, k
        inside = mask
        while _n_eff(weight[inside]) < MIN_CELL and (lo, hi) != (0, len(edges) - 2):
            lo, hi = (lo - 1, hi) if lo > 0 else (lo, hi + 1)
            inside = (cell >= lo) & (cell <= hi)
        k68 = _quantile(ratio[inside], 0.6827, weight[inside])
        k95 = _quantile(ratio[inside], 0.95, weight[inside])
        half68 = _quantile(k68 * sigma[mask], 0.5, weight[mask]) if mask.any() else math.inf
        # a width measured on n clusters is uncertain by ~1/sqrt(n) of it: only a width below
        # the prior's by more than 1.75 times that is information, not a lucky draw of the prior
        margin = 1.0 + MARGIN_SIGMAS / math.sqrt(_n_eff(weight[inside]))
        cells.append(
            {
                "n": int(mask.sum()),
                "k68": k68,
                "k95": k95,
                "informative": bool(half68 * margin < INFORMATIVE * prior_half68),
            }
        )
    return cells


def cell_edges(m: np.ndarray, weight: np.ndarray) -> list[float]:
    """Weighted quantiles ``CELL_QUANTILES`` of the estimate, then the rows above the last cut
    into cells of ~``TOP_CELL`` calibration clusters (unweighted: where they were drawn)."""
    edges = [float(e) for e in _quantile(m, CELL_QUANTILES, weight)]
    top = np.sort(m[m > edges[-1]])
    cells = int(np.clip(len(top) // TOP_CELL, 1, MAX_TOP_CELLS))
    edges += [float(top[len(top) * j // cells]) for j in range(1, cells)]
    return [*edges, float(m.max())]


def _line(m: np.ndarray, truth: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """``a, b`` of log M = a + b m on the top quarter of the estimates (under the prior's
    weights), where the map extrapolates beyond its last shift node (the nodes correct the line
    below): a fit over the whole bin is set by its bulk of small clusters, whose estimates barely
    move. Unweighted within the quarter (its rows are where they were drawn); the whole bin when
    the quarter holds too few rows. The slope is kept in [0, 2]."""
    top = m >= _quantile(m, 0.75, weight)
    if top.sum() < 2 * NODE_ROWS:
        top = np.ones(len(m), bool)
    b = np.polyfit(m[top], truth[top], 1)[0] if np.ptp(m[top]) > 0 else 0.0
    b = float(np.clip(b, 0.0, 2.0))
    return float(np.median(truth[top] - b * m[top])), b


def _shift(nodes: list[list[float]], m: np.ndarray) -> np.ndarray:
    centres, shifts = np.array(nodes).T
    return np.interp(m, centres, shifts)


def _curve(m: np.ndarray, truth: np.ndarray, weight: np.ndarray):
    """The posterior-median curve: the line and its shift nodes."""
    a, b = _line(m, truth, weight)
    return a, b, shift_nodes(m, truth - (a + b * m), weight)


def _cross_fitted_residuals(m: np.ndarray, truth: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """log M minus the curve fitted without the cluster (``CROSS_FOLDS`` folds of alternate rows
    in order of the estimate): residuals from the curve fitted on the same clusters are smaller
    than a fresh cluster's, so interval scales from them would under-cover by the curve's noise."""
    fold = np.empty(len(m), int)
    fold[np.argsort(m, kind="stable")] = np.arange(len(m)) % CROSS_FOLDS
    residual = np.empty(len(m))
    for k in range(CROSS_FOLDS):
        held, fit = fold == k, fold != k
        a, b, nodes = _curve(m[fit], truth[fit], weight[fit])
        residual[held] = truth[held] - (a + b * m[held] + _shift(nodes, m[held]))
    return residual


def fit_map(z, m, sigma, truth, fitted_on: dict, weight=None) -> dict:
    """The calibration map (a JSON-able dict) of one estimate from calibration clusters, each
    of ``weight`` (default 1: a sample of the mass function itself)."""
    z, m, sigma, truth = (np.asarray(v, dtype=float) for v in (z, m, sigma, truth))
    weight = np.ones(len(z)) if weight is None else np.asarray(weight, dtype=float)
    bins = []
    for lo, hi in Z_BINS:
        in_z = (z >= lo) & ((z < hi) if hi < Z_BINS[-1][1] else (z <= hi))
        prior = _prior(truth[in_z], weight[in_z]) if in_z.any() else None
        ok = in_z & np.isfinite(m) & np.isfinite(sigma) & (sigma > 0)
        if prior is None or ok.sum() < MIN_BIN:
            bins.append({"z_bin": [lo, hi], "n": int(ok.sum()), "usable": False})
            continue
        w = weight[ok]
        a, b, nodes = _curve(m[ok], truth[ok], w)
        edges = cell_edges(m[ok], w)
        residual = _cross_fitted_residuals(m[ok], truth[ok], w)
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
                "cells": _fit_cells(m[ok], sigma[ok], residual, edges, prior["half68"], w),
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
            cell = _cell_index(m[rows], spec["est_edges"])  # v1 maps: 4 cells, now 6
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
