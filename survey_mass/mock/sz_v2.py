"""v2 y-map noise: a Gaussian field with the spatial power spectrum of a real Planck y cutout.

``NOISE_CL`` is the pseudo-C_l of the real MILCA Compton-y cutout of PSZ2 G359.07-32.12 (The300th/
DeepPlanck, ``shared/data/deepplanck/PSZ2G359.07-32.12.fits``; 96 x 96 pixels of 1.7'), measured
outside 15 pixels (25.5') of its cluster, mean removed, divided by the mask's mean w^2, in 14
log-spaced bins of l between 100 and 6400 (one bin holds no mode of a 96-pixel grid and is left out),
then times 1.058 so that a 96-pixel crop of a 128-pixel realisation has the real map's 1.60e-6 rms
outside the same mask. It holds CMB/CIB/dust residuals, the beam and the white map noise at once,
so v2 adds no separate white term. Below l = 116 (beyond the cutout) the spectrum is held flat.
``survey-mass report --realism`` measures the real and mock rms, autocorrelation and spectra.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from astropy import units as u

from survey_mass.constants import PLANCK_PIXEL

#: bin centres (multipole l) and pseudo-C_l [sr] of the real cutout's noise (see module docstring)
NOISE_ELL = np.array(
    [
        116.0,
        210.0,
        283.0,
        381.0,
        512.0,
        690.0,
        928.0,
        1249.0,
        1681.0,
        2263.0,
        3045.0,
        4099.0,
        5517.0,
    ]
)
NOISE_CL = 1e-18 * np.array(
    [
        109.7,
        27.82,
        35.06,
        34.74,
        23.29,
        17.02,
        11.66,
        5.251,
        1.762,
        0.4212,
        0.09246,
        0.04474,
        0.02739,
    ]
)


def ell_grid_full(npix: int) -> np.ndarray:
    """Multipole of each full-FFT mode of an ``npix``^2 map at the Planck pixel."""
    k = np.fft.fftfreq(npix, d=PLANCK_PIXEL.to_value(u.rad))
    return 2 * np.pi * np.hypot(k[:, None], k[None, :])


def noise_cl_v2(ell) -> np.ndarray:
    """C_l [sr] of the v2 noise, log-log interpolated in the real cutout's table (0 at l = 0)."""
    ell = np.asarray(ell, float)
    cl = np.exp(np.interp(np.log(np.maximum(ell, 1.0)), np.log(NOISE_ELL), np.log(NOISE_CL)))
    return np.where(ell > 0, cl, 0.0)


@cache
def _noise_amplitude(npix: int) -> np.ndarray:
    """sqrt(C_l / pixel solid angle) of each full-FFT mode (the same for every cluster)."""
    pixel_sr = PLANCK_PIXEL.to_value(u.rad) ** 2
    amplitude = np.sqrt(noise_cl_v2(ell_grid_full(npix)) / pixel_sr)
    amplitude.flags.writeable = False  # shared by every call
    return amplitude


def noise_map_v2(rng: np.random.Generator, npix: int) -> np.ndarray:
    """A Gaussian noise realisation whose power spectrum is ``noise_cl_v2``."""
    white = rng.standard_normal((npix, npix))
    return np.fft.ifft2(np.fft.fft2(white) * _noise_amplitude(npix)).real
