"""Catalog columns from the instruments' masses: per-instrument values, flags and the joint mass."""

from __future__ import annotations

import numpy as np
import pandas as pd

from survey_mass.catalog.schema import FLAG_LARGE_SPREAD, FLAG_MISSING
from survey_mass.infer.joint import JointModel, inverse_variance

#: fold members disagreeing by more than this [dex] set FLAG_LARGE_SPREAD
LARGE_SPREAD_DEX = 0.15


def mass_columns(
    rows: pd.DataFrame, results: dict[str, dict], joint: JointModel | None
) -> pd.DataFrame:
    """``rows`` (target_id, z, ...) with each instrument's and the joint mass columns added.

    ``results`` maps instrument -> target_id -> (log M, spread, sigma); a target an instrument
    did not weigh gets NaN there and that instrument's FLAG_MISSING bit.
    """
    cat = rows.copy()
    flags = np.zeros(len(cat), dtype=np.int32)
    means, sigmas = {}, {}
    for inst, weighed in results.items():
        values = np.array(
            [weighed.get(t, (np.nan,) * 3) for t in cat["target_id"]], dtype=float
        ).reshape(-1, 3)
        cat[f"logm500_{inst}"], cat[f"logm500_{inst}_spread"], cat[f"logm500_{inst}_sigma"] = (
            values.T
        )
        flags |= np.where(np.isnan(values[:, 0]), FLAG_MISSING[inst], 0).astype(np.int32)
        flags |= np.where(values[:, 1] > LARGE_SPREAD_DEX, FLAG_LARGE_SPREAD, 0).astype(np.int32)
        means[inst], sigmas[inst] = values[:, 0], values[:, 2]
    if joint is not None:
        combined = joint.combine(cat["z"].to_numpy(), means, sigmas)
    else:
        combined = inverse_variance(means, sigmas)
    m, sigma, half95 = combined.log10_m500, combined.sigma, combined.half_width_95
    cat["logm500"], cat["logm500_sigma"] = m, sigma
    cat["logm500_p16"], cat["logm500_p84"] = m - sigma, m + sigma
    cat["logm500_p2_5"], cat["logm500_p97_5"] = m - half95, m + half95
    cat["flags"] = flags
    return cat
