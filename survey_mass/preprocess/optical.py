"""SDSS ugriz cubes -> CNN input: the 5 bands on the 3 Mpc physical grid, in luminosity-like units.

Each band-first cube is resampled onto ``OPTICAL_GRID`` pixels over ``OPTICAL_APERTURE`` at the
target's redshift, conserving flux (nanomaggies per model pixel). Each band ``b`` is then

    x_b = asinh( F_b (D_L(z) / D_L(Z_REF))^2 / S_b )

- ``F_b (D_L(z)/D_L(Z_REF))^2`` is the flux the pixel would have at ``Z_REF``: a luminosity per
  fixed physical area, so a cluster's galaxies keep their *absolute* brightness whatever its z (the
  model gets no redshift, only the image; no K-correction: band shifting is left to the CNN);
- ``S_b`` is the band's sky noise per model pixel *for a cluster at Z_REF*: the asinh turns linear
  below ~1 noise sigma and logarithmic for galaxies, and all five bands have the same noise at
  ``Z_REF`` (it scales with z by the same factor in every band), so a band cannot be recognised
  from its noise level alone: the band classifier of the optical model must look at the sources.

The sky noise per native SDSS pixel is ``SKYSIG_<band> / BINNING`` from the header (the mock
survey's cutouts), else the nominal SDSS noise of the 5-sigma depths (real mosaics, whose frames
are averaged and whose noise is not recorded). Bump ``VERSION`` on any change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy import units as u

from survey_mass.constants import (
    COSMOLOGY,
    OPTICAL_APERTURE,
    OPTICAL_GRID,
    SDSS_BANDS,
    SDSS_PIXEL,
)
from survey_mass.physics.sdss import native_noise
from survey_mass.preprocess.batch import Prepared, asinh_float32, prepare_batch
from survey_mass.preprocess.resample import GridSpec
from survey_mass.sources.base import Cutout

VERSION = "optical-v1"
GRID = GridSpec(npix=OPTICAL_GRID, width=OPTICAL_APERTURE)
#: pivot redshift of the luminosity scaling: images there have unit sky noise in every band
Z_REF = 0.3


def model_pixel_arcsec(z) -> np.ndarray:
    """Side of one model-grid pixel [arcsec] at redshift ``z``."""
    angle = OPTICAL_APERTURE / OPTICAL_GRID / COSMOLOGY.angular_diameter_distance(z) * u.rad
    return np.asarray(angle.to_value(u.arcsec))


def native_sky_noise(cutout: Cutout) -> np.ndarray:
    """(5,) sky noise per native 0.396" SDSS pixel [nanomaggy] of a cutout, per band."""
    header = cutout.hdul[0].header
    keys = [f"SKYSIG_{band.upper()}" for band in SDSS_BANDS]
    if all(k in header for k in keys) and "BINNING" in header:
        noise = np.array([float(header[k]) for k in keys]) / float(header["BINNING"])
        if np.all(np.isfinite(noise) & (noise > 0)):
            return noise
    return native_noise()


def _scale(batch, cutouts: Sequence[Cutout], xp):
    """nanomaggies per model pixel (N, 5, H, W) -> asinh of flux at Z_REF over the Z_REF noise."""
    z = np.array([c.target.z for c in cutouts])
    to_ref = (COSMOLOGY.luminosity_distance(z) / COSMOLOGY.luminosity_distance(Z_REF)) ** 2
    # white noise of a sum of native pixels grows with the side of the (larger) model pixel
    pixels_per_side = model_pixel_arcsec(Z_REF) / SDSS_PIXEL.to_value(u.arcsec)
    softening = np.stack([native_sky_noise(c) for c in cutouts]) * pixels_per_side  # (N, 5)
    factor = np.asarray(to_ref.decompose().value)[:, None] / softening
    return asinh_float32(batch * xp.asarray(factor)[:, :, None, None], xp)


def preprocess_optical(cutouts: Sequence[Cutout], xp) -> Prepared:
    """A batch of ugriz cubes -> (N, 128, 128, 5) float32 model input on ``xp``, plus failures."""
    return prepare_batch(
        cutouts, GRID, xp, conserve_flux=True, scale=_scale, channels=len(SDSS_BANDS)
    )
