"""The curve and cells of one estimate on one set of calibration clusters (a z bin of a
calibration map, or an S/N class of it): see ``infer.calibration_map``.

The curve is the posterior median of log M given the estimate m under the clusters' (weighted)
mass function: a line on the top quarter of m plus median offsets in equal-count bins. The
cells are m's quartiles, then its top decile cut into cells of ~``TOP_CELL`` clusters; each has
conformal interval scales from cross-fitted residuals and says whether it is informative, i.e.
narrower than the prior by more than its own statistical uncertainty.
"""

from __future__ import annotations

import math

import numpy as np

#: a cell is informative when its 68% half-width is below this fraction of the prior's, by more
#: than ``MARGIN_SIGMAS`` times the width's statistical uncertainty
INFORMATIVE = 0.9
#: (one-sided, ~4% of uninformative cells pass by luck; a map has ~30 cells)
MARGIN_SIGMAS = 1.75
#: a cell with fewer calibration clusters takes its interval scales from it and its neighbours
MIN_CELL = 50
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


def quantile(values: np.ndarray, q, weight: np.ndarray | None = None):
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


def prior_of(truth: np.ndarray, weight: np.ndarray | None = None) -> dict:
    """The prior of a redshift bin: median true mass and the 68.3%/95% quantiles of the distance
    from it (the same statistic the cells' widths are, so "no narrower" compares like with like)."""
    median = quantile(truth, 0.5, weight)
    distance = np.abs(truth - median)
    return {
        "p50": median,
        "half68": quantile(distance, 0.6827, weight),
        "half95": quantile(distance, 0.95, weight),
        "n": int(len(truth)),
    }


def cell_index(m: np.ndarray, edges) -> np.ndarray:
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
        [quantile(m[part], 0.5, w[part]), quantile(residual[part], 0.5, w[part])]
        for part in np.array_split(order, n_bins)
    ]


def _n_eff(weight: np.ndarray) -> float:
    """Kish's effective number of clusters of a weighted sample."""
    return float(weight.sum() ** 2 / (weight**2).sum()) if len(weight) else 0.0


def _fit_cells(m, sigma, residual, edges, prior_half68, weight) -> list[dict]:
    """Interval scales and informativeness of each cell of the estimate in one z bin."""
    ratio = np.abs(residual) / sigma
    cell = cell_index(m, edges)
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
        k68 = quantile(ratio[inside], 0.6827, weight[inside])
        k95 = quantile(ratio[inside], 0.95, weight[inside])
        half68 = quantile(k68 * sigma[mask], 0.5, weight[mask]) if mask.any() else math.inf
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
    edges = [float(e) for e in quantile(m, CELL_QUANTILES, weight)]
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
    top = m >= quantile(m, 0.75, weight)
    if top.sum() < 2 * NODE_ROWS:
        top = np.ones(len(m), bool)
    b = np.polyfit(m[top], truth[top], 1)[0] if np.ptp(m[top]) > 0 else 0.0
    b = float(np.clip(b, 0.0, 2.0))
    return float(np.median(truth[top] - b * m[top])), b


def shift(nodes: list[list[float]], m: np.ndarray) -> np.ndarray:
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
        residual[held] = truth[held] - (a + b * m[held] + shift(nodes, m[held]))
    return residual


def estimate_map(m, sigma, truth, weight, prior_half68) -> dict:
    """The curve and cells of the estimate ``m`` on one z bin's (or S/N class's) clusters."""
    a, b, nodes = _curve(m, truth, weight)
    edges = cell_edges(m, weight)
    residual = _cross_fitted_residuals(m, truth, weight)
    return {
        "a": float(a),
        "b": float(b),
        "est_edges": edges,
        "shift_nodes": nodes,
        "cells": _fit_cells(m, sigma, residual, edges, prior_half68, weight),
    }
