"""Catalog columns from the instruments' masses: per-instrument values, flags and the joint mass.

With calibration maps (``infer.calibration_map``) each instrument's value and interval are the
calibrated ones; an instrument whose cell is uninformative reports the prior, sets its
FLAG_PRIOR bit and gives the joint mass no weight (the joint model combines the others' raw
outputs, as it was fitted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from survey_mass.catalog.schema import (
    FLAG_JOINT_PRIOR,
    FLAG_LARGE_SPREAD,
    FLAG_MISSING,
    FLAG_PRIOR,
)
from survey_mass.constants import GAUSS_95
from survey_mass.infer.calibration_map import CalibrationMap
from survey_mass.infer.joint import JointModel, inverse_variance

#: fold members disagreeing by more than this [dex] set FLAG_LARGE_SPREAD
LARGE_SPREAD_DEX = 0.15


def mass_columns(
    rows: pd.DataFrame,
    results: dict[str, dict],
    joint: JointModel | None,
    maps: dict[str, CalibrationMap | None] | None = None,
) -> pd.DataFrame:
    """``rows`` (target_id, z, ...) with each instrument's and the joint mass columns added.

    ``results`` maps instrument -> target_id -> (log M, spread, sigma, S/N); a target an instrument
    did not weigh gets NaN there and that instrument's FLAG_MISSING bit. ``maps``: instrument (and
    ``"joint"``) -> calibration map, or None for the uncalibrated outputs.
    """
    maps = maps or {}
    cat = rows.copy()
    flags = np.zeros(len(cat), dtype=np.int32)
    means, sigmas = {}, {}
    for inst, weighed in results.items():
        values = np.array(
            [weighed.get(t, (np.nan,) * 4) for t in cat["target_id"]], dtype=float
        ).reshape(-1, 4)
        cat[f"logm500_{inst}"], cat[f"logm500_{inst}_spread"], cat[f"logm500_{inst}_sigma"] = (
            values[:, :3].T
        )
        flags |= np.where(np.isnan(values[:, 0]), FLAG_MISSING[inst], 0).astype(np.int32)
        flags |= np.where(values[:, 1] > LARGE_SPREAD_DEX, FLAG_LARGE_SPREAD, 0).astype(np.int32)
        means[inst], sigmas[inst] = values[:, 0], values[:, 2]
        cat[f"logm500_{inst}_half95"] = GAUSS_95 * values[:, 2]
        if inst == "sz":
            cat["sz_snr"] = values[:, 3]
        if maps.get(inst) is not None:
            flags |= _calibrated(cat, inst, maps[inst], means, values[:, 3])
    if joint is not None:
        combined = joint.combine(cat["z"].to_numpy(), means, sigmas)
    else:
        combined = inverse_variance(means, sigmas)
    m, sigma, half95 = combined.log10_m500, combined.sigma, combined.half_width_95
    if maps.get("joint") is not None:
        calibrated = maps["joint"].apply(cat["z"].to_numpy(), m, sigma)
        m, sigma, half95 = calibrated.log10_m500, calibrated.sigma, calibrated.half_width_95
        flags |= np.where(calibrated.prior, FLAG_JOINT_PRIOR, 0).astype(np.int32)
    cat["logm500"], cat["logm500_sigma"] = m, sigma
    cat["logm500_p16"], cat["logm500_p84"] = m - sigma, m + sigma
    cat["logm500_p2_5"], cat["logm500_p97_5"] = m - half95, m + half95
    cat["flags"] = flags
    return cat


def _calibrated(
    cat: pd.DataFrame, inst: str, cmap: CalibrationMap, means: dict, snr: np.ndarray
) -> np.ndarray:
    """Replace ``inst``'s columns by their calibrated values (in the S/N class of ``snr``,
    where the map is cut by S/N); the FLAG_PRIOR bits. An uninformative instrument leaves the
    joint inputs (``means``), so it gets no weight there."""
    col = f"logm500_{inst}"
    z, m, sigma = cat["z"].to_numpy(), cat[col].to_numpy(), cat[f"{col}_sigma"].to_numpy()
    applied = cmap.apply(z, m, sigma, snr)
    cat[col], cat[f"{col}_sigma"] = applied.log10_m500, applied.sigma
    cat[f"{col}_half95"] = applied.half_width_95
    means[inst] = np.where(applied.prior, np.nan, means[inst])
    return np.where(applied.prior, FLAG_PRIOR[inst], 0).astype(np.int32)
