"""v2 X-ray: the Chandra ACIS-I field of view as an exposure map over the cutout.

The cutout keeps its fixed physical width (``constants.XRAY_APERTURE``, 4 Mpc), which is wider than
ACIS-I below z ~ 0.25; v2 says so with an exposure map (fraction of the header's EXPOSURE per pixel)
and gives photons only where a chip saw the sky:
- ACIS-I: a 2 x 2 array of 1024 x 1024 0.492" CCDs, 16.9' x 16.9' in all (Chandra Proposers'
  Observatory Guide, Cycle 26, sec. 6.1 and table 6.1), separated by ~11" gaps (POG fig. 6.1:
  18 pixels); the aim point sits near the array's centre, here offset from the catalogued cluster
  centre by N(0, 0.5') per axis, the array rolled by a uniform angle.
- Vignetting: effective area falling linearly to 85% at 10' off axis (POG fig. 4.13, 1.5 keV).
Exposure is the fraction of each model pixel (4 x 4 sub-samples) on a chip times the vignetting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from survey_mass.constants import CHANDRA_PIXEL

CHIP_ARCMIN = 1024 * CHANDRA_PIXEL.to_value("arcmin")  # 8.40' per CCD side
GAP_ARCMIN = 18 * CHANDRA_PIXEL.to_value("arcmin")  # 0.15' between CCDs
VIGNETTING_AT_10_ARCMIN = 0.85
SUBSAMPLE = 4
ROW_BLOCK = 16


def exposure_map(state: pd.Series, npix: int, pixel_arcmin: float) -> np.ndarray:
    """(npix, npix) fraction of the on-axis exposure per pixel (0 off the chips).

    Rows go in blocks of ``ROW_BLOCK``: the (rows, npix, 4, 4) sub-sample temporaries then stay in
    cache, which halves the time of one full-size pass; each pixel's mean is the same sum.
    """
    offsets = ((np.arange(SUBSAMPLE) + 0.5) / SUBSAMPLE - 0.5) * pixel_arcmin
    grid = (np.arange(npix) - (npix - 1) / 2) * pixel_arcmin
    x = (grid[None, :, None, None] + offsets[None, None, None, :]) - state.xray_aim_dx
    rows = (grid[:, None, None, None] + offsets[None, None, :, None]) - state.xray_aim_dy
    roll = (np.cos(state.xray_roll), np.sin(state.xray_roll))
    return np.concatenate(
        [_chip_fraction(x, rows[i : i + ROW_BLOCK], roll) for i in range(0, npix, ROW_BLOCK)]
    )


def _chip_fraction(x: np.ndarray, y: np.ndarray, roll: tuple[float, float]) -> np.ndarray:
    """Mean over each pixel's sub-samples of (on a chip) x vignetting."""
    c, s = roll
    u, v = c * x + s * y, -s * x + c * y
    half = CHIP_ARCMIN + GAP_ARCMIN / 2
    on_chip = (
        (np.abs(u) <= half)
        & (np.abs(v) <= half)
        & (np.abs(u) >= GAP_ARCMIN / 2)
        & (np.abs(v) >= GAP_ARCMIN / 2)
    )
    vignetting = 1.0 - (1.0 - VIGNETTING_AT_10_ARCMIN) * np.hypot(u, v) / 10.0
    return (on_chip * vignetting).mean(axis=(2, 3))


def fov_arcmin() -> float:
    """Side of the ACIS-I array [arcmin] (16.9')."""
    return 2 * CHIP_ARCMIN + GAP_ARCMIN
