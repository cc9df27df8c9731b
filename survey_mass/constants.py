"""One place for every constant of physics or of the surveys.

Everything that a stage needs to agree on with another (pixel scales, beams, bands, redshift bins,
model grids, the cosmology) lives here, so that the simulator and the real fetchers cannot drift.
"""

from __future__ import annotations

from typing import Literal

import astropy.units as u
from astropy.cosmology import FlatLambdaCDM

#: Flat LCDM used everywhere (simulator, R500, distances). Planck-like round numbers.
COSMOLOGY = FlatLambdaCDM(H0=70.0, Om0=0.3, Tcmb0=2.725)
HUBBLE_H = COSMOLOGY.H0.value / 100.0

Instrument = Literal["xray", "sz", "optical"]
INSTRUMENTS: tuple[str, ...] = ("xray", "sz", "optical")

#: Redshift bins of the SZ paper (de Andres et al.), also used for every per-bin table.
Z_BINS: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 1.0))

# --- X-ray: Chandra ACIS-I-like ----------------------------------------------------------------
XRAY_BAND_KEV = (0.5, 7.0)
CHANDRA_PIXEL = 0.492 * u.arcsec
#: Model grid: 128x128 photon image over a fixed *physical* aperture centred on the target, so the
#: CNN sees the same physical scale at every redshift (the paper's clusters all sat at z=0.05).
XRAY_GRID = 128
XRAY_APERTURE = 4.0 * u.Mpc  # full width of the model grid
XRAY_DEFAULT_EXPOSURE = 100.0 * u.ks
#: Counts per erg/cm^2 for a ~5 keV thermal spectrum in 0.5-7 keV on ACIS-I (effective area
#: ~ 400 cm^2 averaged over the band, ~2.5 keV mean photon energy).
ACIS_COUNTS_PER_ERG_CM2 = 400.0 / (2.5 * 1.602e-9)
#: Particle + sky background, counts / s / arcmin^2 in 0.5-7 keV (ACIS-I quiescent level).
ACIS_BACKGROUND_RATE = 1.2e-3

# --- SZ: Planck-like Compton-y ------------------------------------------------------------------
PLANCK_PIXEL = 1.7 * u.arcmin  # HEALPix Nside=2048
PLANCK_BEAM_FWHM = 10.0 * u.arcmin  # MILCA/NILC y-map resolution
SZ_GRID = 96  # as in DeepPlanck / the SZ paper's cutouts
SZ_WHITE_NOISE = 1.0e-6  # y per 1.7' pixel, after beam (Planck MILCA level ~ 1e-6)

# --- Optical: SDSS ugriz ------------------------------------------------------------------------
SDSS_BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z")
SDSS_PIXEL = 0.396 * u.arcsec
SDSS_PSF_FWHM = 1.4 * u.arcsec
#: Model grid: 5 bands x 128x128, binned from native pixels over a fixed physical aperture.
OPTICAL_GRID = 128
OPTICAL_APERTURE = 3.0 * u.Mpc

#: Model grid shape per instrument, (height, width, channels).
MODEL_INPUT_SHAPE: dict[str, tuple[int, int, int]] = {
    "xray": (XRAY_GRID, XRAY_GRID, 1),
    "sz": (SZ_GRID, SZ_GRID, 1),
    "optical": (OPTICAL_GRID, OPTICAL_GRID, len(SDSS_BANDS)),
}

# --- Catalog layout -----------------------------------------------------------------------------
#: Spatial index column: HEALPix nested index at order 29 (as in HATS/LSDB).
SPATIAL_INDEX_ORDER = 29
