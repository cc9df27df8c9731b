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

A map fitted with an S/N (SZ: the y map's matched-filter S/N, ``infer.sz_snr``) also holds, per
redshift bin, the curve and cells of each S/N class (``SNR_EDGES``), judged against the same prior:
users select Planck clusters on S/N, and a detection's estimate alone overlaps the bulk of the
mass function at its redshift, so a cell of the estimate alone is as wide as the prior there.
Each class has its own prior, the true masses of its clusters (the mass function given the S/N):
a cell is informative when it is narrower than that, and an uninformative one returns it. A class
of detections is fitted on a mix of the estimate and log10 S/N (``mix``, least squares on the
class), as the CNN's estimate saturates for the most massive clusters while their S/N grows. A row
without an S/N takes the bin's map over all S/N.

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
MAP_VERSION = 2
#: version 1 maps have no S/N classes
READABLE_VERSIONS = (1, 2)
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
#: S/N class edges of maps cut by S/N (SZ): Planck's detection threshold. Noise alone reaches
#: S/N 3 in ~1% of maps, so a class from 3 holds the bulk's noise peaks, which under the mass
#: function outnumber the real detections at z > 0.2; above 4.5 the cluster is in the map
SNR_EDGES = (4.5,)


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


def _estimate_map(m, sigma, truth, weight, prior_half68) -> dict:
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


def _in_class(snr: np.ndarray, bounds) -> np.ndarray:
    lo, hi = (
        (-math.inf if bounds[0] is None else bounds[0]),
        (math.inf if bounds[1] is None else bounds[1]),
    )
    return (snr >= lo) & (snr < hi)


def _snr_mix(m, truth, weight, snr) -> list[float]:
    """``[beta, gamma]`` of the weighted least-squares line log M ~ c + beta m + gamma log10 S/N
    of a class of detections: the map's estimate there is ``beta m + gamma log10 S/N``, because
    the CNN's estimate saturates at the top while the matched filter's S/N keeps growing as
    Y ~ M^1.8 (a class of estimates alone puts the most massive detections in one cell, its
    prior). beta is kept in [0, 2] (a few dozen detections with nearly equal estimates would
    otherwise amplify their noise), gamma refitted with it."""
    log_snr = np.log10(snr)
    root = np.sqrt(weight)

    def fit(design, target):
        return np.linalg.lstsq(design * root[:, None], target * root, rcond=None)[0]

    beta, gamma = fit(np.column_stack([np.ones(len(m)), m, log_snr]), truth)[1:]
    if not 0.0 <= beta <= 2.0:
        beta = float(np.clip(beta, 0.0, 2.0))
        gamma = fit(np.column_stack([np.ones(len(m)), log_snr]), truth - beta * m)[1]
    return [float(beta), float(gamma)]


def mixed_estimate(part: dict, m: np.ndarray, snr: np.ndarray) -> np.ndarray:
    """The estimate a map (or S/N class) is fitted on: ``m``, or its mix with log10 S/N."""
    if "mix" not in part:
        return m
    beta, gamma = part["mix"]
    return beta * m + gamma * np.log10(snr)


def _snr_classes(m, sigma, truth, weight, snr) -> list[dict] | None:
    """The bin's maps per class of ``SNR_EDGES`` (open ends None), each with its own prior (the
    true masses of the class: the mass function given the S/N), or None when a class has fewer
    than ``MIN_BIN`` calibration clusters (the bin's one map then serves every S/N). Classes of
    detections (S/N above the first edge) are fitted on the mix of the estimate and the S/N."""
    if snr is None or not np.isfinite(snr).any():
        return None
    cuts = [None, *SNR_EDGES, None]
    classes = []
    for bounds in zip(cuts[:-1], cuts[1:], strict=True):
        inside = _in_class(snr, bounds)
        if inside.sum() < MIN_BIN:
            return None
        prior = _prior(truth[inside], weight[inside])
        spec = {"snr": list(bounds), "n": int(inside.sum()), "prior": prior}
        if bounds[0] is not None:
            spec["mix"] = _snr_mix(m[inside], truth[inside], weight[inside], snr[inside])
        est = mixed_estimate(spec, m[inside], snr[inside])
        spec |= _estimate_map(est, sigma[inside], truth[inside], weight[inside], prior["half68"])
        classes.append(spec)
    return classes


def fit_map(z, m, sigma, truth, fitted_on: dict, weight=None, snr=None) -> dict:
    """The calibration map (a JSON-able dict) of one estimate from calibration clusters, each
    of ``weight`` (default 1: a sample of the mass function itself); with ``snr`` (SZ's
    matched-filter S/N) each z bin is also mapped per S/N class, where it has the clusters."""
    z, m, sigma, truth = (np.asarray(v, dtype=float) for v in (z, m, sigma, truth))
    weight = np.ones(len(z)) if weight is None else np.asarray(weight, dtype=float)
    snr = None if snr is None else np.asarray(snr, dtype=float)
    bins = []
    for lo, hi in Z_BINS:
        in_z = (z >= lo) & ((z < hi) if hi < Z_BINS[-1][1] else (z <= hi))
        prior = _prior(truth[in_z], weight[in_z]) if in_z.any() else None
        ok = in_z & np.isfinite(m) & np.isfinite(sigma) & (sigma > 0)
        if prior is None or ok.sum() < MIN_BIN:
            bins.append({"z_bin": [lo, hi], "n": int(ok.sum()), "usable": False})
            continue
        args = (m[ok], sigma[ok], truth[ok], weight[ok])
        spec = {"z_bin": [lo, hi], "n": int(ok.sum()), "usable": True, "prior": prior}
        spec |= _estimate_map(*args, prior["half68"])
        classes = _snr_classes(*args, None if snr is None else snr[ok])
        if classes is not None:
            spec["snr_classes"] = classes
        bins.append(spec)
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
        if data.get("map_version") not in READABLE_VERSIONS:
            raise ValueError(f"calibration map version {data.get('map_version')} is not readable")
        self.data = data
        self.bins = data["z_bins"]

    @classmethod
    def read(cls, path: str | os.PathLike) -> CalibrationMap:
        return cls(json.loads(Path(path).read_text()))

    def apply(self, z, m, sigma, snr=None) -> Applied:
        """Calibrated values; rows outside every usable z bin keep NaN (no calibrated claim).
        A z bin mapped per S/N class takes each row's class from ``snr`` (a row without one,
        the bin's map over every S/N)."""
        z, m, sigma = (np.asarray(v, dtype=float) for v in (z, m, sigma))
        snr = np.full(len(z), np.nan) if snr is None else np.asarray(snr, dtype=float)
        out = [np.full(len(z), np.nan) for _ in range(3)]
        prior_flag = np.zeros(len(z), dtype=bool)
        last = Z_BINS[-1][1]
        for spec in self.bins:
            lo, hi = spec["z_bin"]
            rows = np.flatnonzero((z >= lo) & ((z < hi) if hi < last else (z <= hi)))
            rows = rows[np.isfinite(m[rows])]
            if not spec["usable"] or not len(rows):
                continue
            parts = [(spec, ~np.isfinite(snr[rows]) if "snr_classes" in spec else None)]
            parts += [(c, _in_class(snr[rows], c["snr"])) for c in spec.get("snr_classes", [])]
            for part, mask in parts:
                picked = rows if mask is None else rows[mask]
                est = mixed_estimate(part, m[picked], snr[picked])
                value, half68, half95, informative = _applied(
                    part, part.get("prior", spec["prior"]), est, sigma[picked]
                )
                out[0][picked], out[1][picked], out[2][picked] = value, half68, half95
                prior_flag[picked] = ~informative
        return Applied(out[0], out[1], out[2], prior_flag)


def _applied(part: dict, prior: dict, m: np.ndarray, sigma: np.ndarray):
    """(value, 68% and 95% half-widths, informative) of estimates ``m`` in one map's cells."""
    cell = _cell_index(m, part["est_edges"])  # v1 maps: 4 cells, now up to 10
    k68 = np.array([c["k68"] for c in part["cells"]])[cell]
    k95 = np.array([c["k95"] for c in part["cells"]])[cell]
    informative = np.array([c["informative"] for c in part["cells"]], dtype=bool)[cell]
    value = np.where(
        informative, part["a"] + part["b"] * m + _shift(part["shift_nodes"], m), prior["p50"]
    )
    half68 = np.where(informative, k68 * sigma, prior["half68"])
    half95 = np.where(informative, k95 * sigma, prior["half95"])
    return value, half68, half95, informative


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
