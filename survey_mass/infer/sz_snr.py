"""The S/N of a cluster in its y map: a matched filter, as Planck's detection step (MMF) measures it.

Users select SZ clusters on detection S/N (PSZ2: >= 4.5), and a y-map CNN's estimate alone cannot
tell a detection from the bulk of the mass function below it, whose estimates overlap. The
calibration map therefore cuts each redshift bin by this S/N too (``infer.calibration_map``), and
the catalog carries it (``sz_snr``).

The filter is the classic one (Haehnelt & Tegmark 1996; Melin et al. 2006) at the cutout's
centre: for templates tau (the beam, FWHM 10', broadened by a cluster of 0, 4, 8 and 16 arcmin
FWHM, as the MMF scans sizes) and the noise power P(l) measured on the cutout itself in 14
log-spaced bins of l (then again with the fitted template taken out above S/N ~3, so a bright
cluster does not count as its own noise), the amplitude is
A = sum(tau* d / P) / sum(|tau|^2 / P) with sigma_A = sum(|tau|^2 / P)^(-1/2), and the S/N is the
largest A / sigma_A over the sizes. On the mock's noise-only maps it has unit spread per size.
Computed on the preprocessed batch (the 96 x 96 model grid), on ``xp``.
"""

from __future__ import annotations

import functools

import numpy as np
from astropy import units as u

from survey_mass.constants import PLANCK_BEAM_FWHM, PLANCK_PIXEL
from survey_mass.xp import to_numpy

#: FWHM [arcmin] of the cluster the filter is broadened by (0: unresolved)
CLUSTER_FWHM_ARCMIN = (0.0, 4.0, 8.0, 16.0)
#: log-spaced bins of l in which the noise power is averaged
NOISE_BINS = 14
#: first-pass S/N from which the fitted template is taken out of the noise estimate, and the
#: S/N span over which the share taken out ramps up to all of it
RAMP_START, RAMP_WIDTH = 3.0, 3.0


@functools.lru_cache(maxsize=1)
def _filter_tables(npix: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(templates' FFTs (S, n, n), bin of each Fourier mode (n, n), one-hot bins (B, n*n))."""
    pixel = PLANCK_PIXEL.to_value(u.arcmin)
    yy, xx = np.mgrid[:npix, :npix] - npix // 2
    r2 = (xx**2 + yy**2) * pixel**2
    beam = PLANCK_BEAM_FWHM.to_value(u.arcmin)
    templates = []
    for size in CLUSTER_FWHM_ARCMIN:
        s = np.hypot(beam, size) / (2 * np.sqrt(2 * np.log(2)))
        templates.append(np.fft.fft2(np.exp(-r2 / (2 * s**2))))
    k = np.fft.fftfreq(npix)
    ell = np.hypot(k[:, None], k[None, :])
    edges = np.geomspace(ell[ell > 0].min() * 0.999, ell.max() * 1.001, NOISE_BINS + 1)
    which = np.clip(np.digitize(ell, edges) - 1, 0, NOISE_BINS - 1)
    which[0, 0] = -1  # the mean is not a noise mode
    onehot = (which.reshape(1, -1) == np.arange(NOISE_BINS)[:, None]).astype(np.float64)
    return np.asarray(templates), which, onehot


def snr_per_size(maps, xp) -> np.ndarray:
    """(N, sizes) S/N at the centre of each y map of ``maps`` (N, n, n[, 1]) per template size.

    The noise power is measured twice: on the map, then on the map less a share of the fitted
    template, so a bright cluster does not raise its own noise estimate (without the second pass a
    100-sigma source scored ~30). The share ramps from 0 at a first-pass S/N of 3 to 1 at 6: taking
    the fit out of a noise-only map would bias its noise low (the lowest l bins hold a few modes)
    and widen the null distribution to ~1.2 sigma; with the ramp it stays at unit spread.
    """
    maps = xp.asarray(maps, dtype=xp.float64)
    if maps.ndim == 4:
        maps = maps[..., 0]
    n_maps, npix = maps.shape[0], maps.shape[-1]
    if n_maps == 0:
        return np.zeros((0, len(CLUSTER_FWHM_ARCMIN)))
    templates, which, onehot = (xp.asarray(t) for t in _filter_tables(npix))
    counts = onehot.sum(axis=1)

    def inverse_power(fourier):
        binned = ((xp.abs(fourier) ** 2).reshape(n_maps, -1) @ onehot.T) / counts  # (N, B)
        return xp.where(which >= 0, 1.0 / binned[:, xp.maximum(which, 0)], 0.0)  # (N, n, n)

    def fit(tau, inverse):
        norm = (xp.abs(tau) ** 2 * inverse).sum(axis=(1, 2))
        amplitude = (xp.conj(tau) * fourier * inverse).sum(axis=(1, 2)).real / norm
        return amplitude, norm

    fourier = xp.fft.fft2(maps)
    first = inverse_power(fourier)
    snr = []
    for tau in templates:
        amplitude, norm = fit(tau, first)
        share = xp.clip((amplitude * xp.sqrt(norm) - RAMP_START) / RAMP_WIDTH, 0.0, 1.0)
        cleaned = fourier - (share * amplitude)[:, None, None] * tau
        amplitude, norm = fit(tau, inverse_power(cleaned))
        snr.append(amplitude * xp.sqrt(norm))
    return to_numpy(xp.stack(snr, axis=1))


def matched_filter_snr(maps, xp) -> np.ndarray:
    """S/N at the centre of each y map of the batch ``maps`` (N, n, n[, 1]) on ``xp``: the
    largest over the template sizes, as the MMF's detection S/N."""
    return snr_per_size(maps, xp).max(axis=1)
