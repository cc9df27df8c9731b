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
redshift bin, the curve and cells of each S/N class (``SNR_EDGES``):
users select Planck clusters on S/N, and a detection's estimate alone overlaps the bulk of the
mass function at its redshift, so a cell of the estimate alone is as wide as the prior there.
Each class has its own prior, the true masses of its clusters (the mass function given the S/N):
a cell is informative when it is narrower than that, and an uninformative one returns it. A class
of detections is fitted on a mix of the estimate and log10 S/N (``mix``, least squares on the
class), as the CNN's estimate saturates for the most massive clusters while their S/N grows; its
cells' scales are widths in dex (sigma 1), not multiples of the CNN's spread, which widens where it
saturates. A row
without an S/N takes the bin's map over all S/N.

The calibration clusters may be a stratified sample: each carries a weight (the cone of the mass
function at 1, the rare massive clusters drawn from a wider cone at the ratio of the areas), and
every median, quantile and line is weighted, so the map is the mass function's while its massive
end is measured on hundreds of clusters instead of a few.

This module holds the map's format, its z bins and S/N classes, and applying it; the curve and
cells of one estimate on one set of clusters are fitted in ``infer.calibration_cells``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey_mass.constants import Z_BINS
from survey_mass.infer.calibration_cells import cell_index, estimate_map, prior_of, shift

MAP_NAME = "calibration_map.json"
MAP_VERSION = 2
#: version 1 maps have no S/N classes
READABLE_VERSIONS = (1, 2)
#: a redshift bin with fewer calibration clusters borrows its neighbour's map
MIN_BIN = 20

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


def _in_class(snr: np.ndarray, bounds) -> np.ndarray:
    lo, hi = (
        (-math.inf if bounds[0] is None else bounds[0]),
        (math.inf if bounds[1] is None else bounds[1]),
    )
    return np.isfinite(snr) & (snr >= lo) & (snr < hi)


def _snr_mix(m, truth, weight, snr) -> list[float]:
    """``[beta, gamma]`` of the weighted least-squares line log M ~ c + beta m + gamma log10 S/N
    of a class of detections: the map's estimate there is ``beta m + gamma log10 S/N``, because
    the CNN's estimate saturates at the top while the matched filter's S/N keeps growing with
    the mass (more slowly than Y ~ M^1.8 above S/N ~10, see ``infer.sz_snr``; a class of
    estimates alone puts the most massive detections in one cell, its prior). beta is kept in [0, 2] (a few dozen detections with nearly equal estimates would
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


def part_sigma(part: dict, sigma: np.ndarray) -> np.ndarray:
    """The sigma a map's interval scales multiply: the model's own, or 1 dex for a mix with the
    S/N (the CNN's ensemble spread widens where it saturates, just where the S/N carries the
    mass, so a mix's cells are scaled by their residuals alone)."""
    return np.ones_like(sigma) if "mix" in part else sigma


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
        prior = prior_of(truth[inside], weight[inside])
        spec = {"snr": list(bounds), "n": int(inside.sum()), "prior": prior}
        if bounds[0] is not None:
            spec["mix"] = _snr_mix(m[inside], truth[inside], weight[inside], snr[inside])
        est = mixed_estimate(spec, m[inside], snr[inside])
        scale = part_sigma(spec, sigma[inside])
        spec |= estimate_map(est, scale, truth[inside], weight[inside], prior["half68"])
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
        prior = prior_of(truth[in_z], weight[in_z]) if in_z.any() else None
        ok = in_z & np.isfinite(m) & np.isfinite(sigma) & (sigma > 0)
        if prior is None or ok.sum() < MIN_BIN:
            bins.append({"z_bin": [lo, hi], "n": int(ok.sum()), "usable": False})
            continue
        args = (m[ok], sigma[ok], truth[ok], weight[ok])
        spec = {"z_bin": [lo, hi], "n": int(ok.sum()), "usable": True, "prior": prior}
        spec |= estimate_map(*args, prior["half68"])
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
                    part, part.get("prior", spec["prior"]), est, part_sigma(part, sigma[picked])
                )
                out[0][picked], out[1][picked], out[2][picked] = value, half68, half95
                prior_flag[picked] = ~informative
        return Applied(out[0], out[1], out[2], prior_flag)


def _applied(part: dict, prior: dict, m: np.ndarray, sigma: np.ndarray):
    """(value, 68% and 95% half-widths, informative) of estimates ``m`` in one map's cells."""
    cell = cell_index(m, part["est_edges"])  # v1 maps: 4 cells, now up to 10
    k68 = np.array([c["k68"] for c in part["cells"]])[cell]
    k95 = np.array([c["k95"] for c in part["cells"]])[cell]
    informative = np.array([c["informative"] for c in part["cells"]], dtype=bool)[cell]
    value = np.where(
        informative, part["a"] + part["b"] * m + shift(part["shift_nodes"], m), prior["p50"]
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
