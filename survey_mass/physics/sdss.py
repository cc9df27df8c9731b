"""SDSS imaging noise from the survey's depths: what real frames and the simulator share."""

from __future__ import annotations

import numpy as np

from survey_mass.constants import SDSS_BANDS, SDSS_DEPTH_5SIGMA, SDSS_PIXEL, SDSS_PSF_FWHM


def native_noise() -> np.ndarray:
    """Sky noise per native pixel [nanomaggy] per band, from the 5-sigma point-source depths.

    A Gaussian PSF's noise-equivalent area is 4 pi sigma_psf^2, so sigma_pix = F_5 / (5 sqrt(A)).
    """
    sigma_psf = (SDSS_PSF_FWHM / SDSS_PIXEL).decompose().value / np.sqrt(8 * np.log(2))
    flux_5sigma = np.array([10 ** (-0.4 * (SDSS_DEPTH_5SIGMA[b] - 22.5)) for b in SDSS_BANDS])
    return flux_5sigma / (5 * np.sqrt(4 * np.pi * sigma_psf**2))
