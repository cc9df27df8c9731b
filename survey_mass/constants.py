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

#: Half-width of a Gaussian's central 95% interval in sigmas: the 95% interval where no measured
#: one (``calibration.interval_95``) exists
GAUSS_95 = 1.959964

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

# --- Mock survey: noise, depths and external-catalog selections (survey_mass.mock) -------
#: Red (residual-foreground) part of the y-map noise on top of the beamed SZ_WHITE_NOISE:
#: C_l = C_white B_l^2 (1 + (l_knee / l)^index); with the unbeamed SZ_PIXEL_NOISE this gives the
#: ~1.6e-6 rms of the real MILCA cutout in shared/data/deepplanck away from its cluster.
SZ_NOISE_ELL_KNEE = 500.0
SZ_NOISE_RED_INDEX = 2.0
SZ_PIXEL_NOISE = 4.0e-7  # y per pixel, white at the pixel scale (map-making residual)
#: SDSS DR8 95%-completeness point-source depths (AB mag; 5 sigma, 1.4" seeing), per band.
SDSS_DEPTH_5SIGMA: dict[str, float] = {"u": 22.0, "g": 22.2, "r": 22.2, "i": 21.3, "z": 20.5}
#: Top-hat approximations of the SDSS filter curves [Angstrom], for synthetic photometry.
SDSS_BAND_EDGES: dict[str, tuple[float, float]] = {
    "u": (3050.0, 4000.0),
    "g": (4000.0, 5450.0),
    "r": (5450.0, 6950.0),
    "i": (6950.0, 8400.0),
    "z": (8400.0, 10400.0),
}
#: Planck hydrostatic mass bias (1 - b): MSZ = (1 - b) M500 on average (Planck 2015 XXIV).
PLANCK_HYDROSTATIC_BIAS = 0.8
PSZ2_SNR_MIN = 4.5  # PSZ2 union catalog detection threshold
#: Y5R500 noise of the Planck matched filter, sigma_Y = compact sqrt(1 + (theta500 / scale)^2): flat
#: for unresolved clusters, growing once resolved; normalised so that the mock PSZ2 holds ~0.05
#: clusters/deg^2 (real PSZ2: 1,653 over 83% of the sky) with median errors ~5e-4 arcmin^2.
PSZ2_SIGMA_Y_COMPACT = 4.0e-4 * u.arcmin**2
PSZ2_SIGMA_Y_SCALE = 10.0 * u.arcmin
#: SDSS DR8 redMaPPer v5.10 selection (Rykoff et al. 2014): lambda >= 20, 0.08 <= z_lambda <= 0.6.
REDMAPPER_LAMBDA_MIN = 20.0
REDMAPPER_Z_RANGE = (0.08, 0.6)
