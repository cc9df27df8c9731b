"""Compiled inner loops of the mock survey's renderers (numba), and how they are compiled.

A loop over a cutout's sub-pixel samples that evaluates a profile and averages it per pixel in one
pass does in one sweep what NumPy does in a dozen full passes over (npix, npix, s, s) arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np


def compiled(func: Callable | None = None, *, fastmath: bool = False) -> Callable:
    """``numba.njit`` cached on disk (beside the source or in the user's cache directory), or
    compiled once per process (~0.5 s) where neither is writable, e.g. a read-only container with
    no home: numba refuses ``cache=True`` there at import time, which would stop every job.

    ``fastmath`` lets LLVM reorder sums and vectorise the profile: results move by a few units in
    the last place, far below the Poisson and Gaussian noise the renderers add."""

    def decorate(f: Callable) -> Callable:
        try:
            return numba.njit(cache=True, fastmath=fastmath)(f)
        except RuntimeError:
            return numba.njit(fastmath=fastmath)(f)

    return decorate if func is None else decorate(func)


@numba.njit(inline="always", fastmath=True)
def _elliptical_r2(dx: float, dy: float, q: float, cos: float, sin: float) -> float:
    """Squared elliptical radius ``xr^2 q + yr^2 / q`` of an offset (dx, dy) from a profile's
    centre, in the frame rotated by (cos, sin): the isophotes keep their area for any q."""
    xr, yr = cos * dx + sin * dy, -sin * dx + cos * dy
    return xr * xr * q + yr * yr / q


#: columns of a beta component row for :func:`beta_pixel_mean`
BETA_COLUMNS = ("x0", "y0", "rc", "p", "q", "cos", "sin", "amplitude")


@compiled(fastmath=True)
def beta_pixel_mean(grid: np.ndarray, offsets: np.ndarray, components: np.ndarray) -> np.ndarray:
    """(npix, npix) mean over each pixel's sub-samples of the sum of beta models
    ``amplitude (1 + r^2 / rc^2)^(-p)``, r^2 the :func:`_elliptical_r2` of the offset from the
    centre (x0, y0).

    Sub-sample (a, b) of pixel (i, j) sits at ``(grid[j] + offsets[b], grid[i] + offsets[a])``;
    ``components`` has one row per model with the :data:`BETA_COLUMNS`. The loop runs along image
    rows innermost, where the power (most of the time) is called on contiguous pixels.
    """
    npix, s = grid.size, offsets.size
    out = np.zeros((npix, npix))
    for m in range(components.shape[0]):
        x0, y0, rc, p, q = (
            components[m, 0],
            components[m, 1],
            components[m, 2],
            components[m, 3],
            components[m, 4],
        )
        cos, sin, amplitude = components[m, 5], components[m, 6], components[m, 7]
        inverse_rc2 = 1.0 / (rc * rc)
        for i in range(npix):
            row = out[i]
            for a in range(s):
                dy = grid[i] + offsets[a] - y0
                for b in range(s):
                    for j in range(npix):
                        r2 = _elliptical_r2(grid[j] + offsets[b] - x0, dy, q, cos, sin)
                        row[j] += amplitude * math.pow(1.0 + r2 * inverse_rc2, -p)
    return out / (s * s)


@compiled(fastmath=True)
def gnfw_pixel_sums(
    grid: np.ndarray,
    offsets: np.ndarray,
    halo: tuple[float, float, float, float, float, float],
    log_x: np.ndarray,
    profile: np.ndarray,
    slopes: np.ndarray,
    x_in: float,
) -> tuple[np.ndarray, float]:
    """(per-pixel sums over the sub-samples of a projected profile, its sum over the samples at
    X < ``x_in``), X the elliptical radius in units of theta500.

    ``halo`` = (x0, y0, q, cos, sin, theta500): centre, axis ratio and rotation as in
    :func:`beta_pixel_mean`. The profile is ``np.interp(log max(X, X_0), log_x, profile,
    right=0)`` with numpy's own formula, ``slopes`` being its segments' slopes.
    """
    npix, s = grid.size, offsets.size
    x0, y0, q, cos, sin, theta500 = halo
    log_min, log_max = log_x[0], log_x[-1]
    x_min = math.exp(log_min)
    sums = np.zeros((npix, npix))
    inside = 0.0
    for i in range(npix):
        row = sums[i]
        for a in range(s):
            dy = grid[i] + offsets[a] - y0
            for b in range(s):
                for j in range(npix):
                    r2 = _elliptical_r2(grid[j] + offsets[b] - x0, dy, q, cos, sin)
                    radius = math.sqrt(r2) / theta500
                    lr = math.log(max(radius, x_min))
                    if lr > log_max:
                        value = 0.0
                    elif lr <= log_min:
                        value = profile[0]
                    elif lr == log_max:
                        value = profile[-1]
                    else:
                        k = np.searchsorted(log_x, lr, side="right") - 1
                        value = slopes[k] * (lr - log_x[k]) + profile[k]
                    row[j] += value
                    if radius < x_in:
                        inside += value
    return sums, inside
