"""v2 mock external catalogs: Planck PSZ2 with noise per sky region, redMaPPer with SDSS depth.

Used by :func:`.external.pixel_catalog` when ``UniverseSpec.physics == "v2"``; same columns as v1.

- PSZ2: Y5R500 plus Gaussian matched-filter noise sigma_Y times a unit normal that, for clusters
  whose signal alone is >= 1 sigma, is the filtered noise of the cluster's own y-map cutout (so the
  catalogue and the cutout see the same fluctuation; the cutout's noise has no depth map, so it
  correlates with, not equals, the catalogue's),
  sigma_Y = SIGMA_Y_COMPACT g(beta_ecl, b) (1 + (theta500 / SIGMA_Y_SCALE)^2)^(SIGMA_Y_INDEX / 2):
  flat for unresolved clusters, growing as the filter's aperture grows; g is the sky region's depth.
  Planck's scan strategy puts most hits near the ecliptic poles, where the noise is lowest
  (Planck 2015 results XXVII, A&A 594, A27, fig. 3): g = [1 + 3 exp(-(90 - |beta|)^2 / 2 15^2)]^-1/2
  (half the noise at the poles); Galactic foregrounds raise it near the plane, g x (1 + 0.3
  exp(-|b| / 15)), and the 16.4% of the sky behind the PSZ2 Galactic and point-source mask (83.6%
  kept, Planck 2015 XXVII sec. 2) is taken as |b| < 9.5 deg, where nothing is detected.
  SIGMA_Y_COMPACT, SIGMA_Y_SCALE and SIGMA_Y_INDEX are *calibrated* on the real PSZ2 counts per
  redshift bin (README). SNR >= 4.5; MSZ = the hydrostatic mass of Y_obs through the Planck Y-M
  relation (:mod:`.physics_v2`): biased low by (1-b) because the signal is, not by a factor added.
- redMaPPer: the cluster's n red members >= 0.2 L* (the optical image's own), of which the SDSS
  depth shows Binomial(n, 1/S(z)) (membership completeness; S(z) = 1 to z 0.35, Rykoff et al. 2014
  sec. 9), plus v1's projections and background noise, scaled back up by S(z); kept where
  lambda / S(z) >= 20 and 0.08 <= z_lambda <= 0.55 (the real catalogue's cut and range).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy import units as u

from survey_mass.constants import PSZ2_SNR_MIN, REDMAPPER_LAMBDA_MIN, SZ_GRID
from survey_mass.mock import optical, physics_v2, sz
from survey_mass.mock.external import _number, _r500_deg, true_centres
from survey_mass.physics.cosmology import angular_diameter_distance_mpc
from survey_mass.spec.universe import UniverseSpec

#: calibrated on the real PSZ2 counts per z bin (see module docstring and README)
SIGMA_Y_COMPACT = 2.3e-4  # arcmin^2
SIGMA_Y_SCALE = 7.0  # arcmin
SIGMA_Y_INDEX = 1.35
#: |b| below which the PSZ2 mask hides the sky (sin 9.5 deg = 16.5% of the sphere)
PSZ2_MASK_B_DEG = 9.5
#: catalogue S/N of the signal alone from which the noise is the cutout's own (below it a cluster
#: needs a 3.5-sigma upward fluctuation to be detected, and independent draws save the filtering)
OWN_NOISE_MIN_SNR = 1.0
OBLIQUITY_DEG = 23.4393


def galactic_latitude(ra, dec) -> np.ndarray:
    """Galactic latitude [deg] from the J2000 north Galactic pole (192.85948, +27.12825)."""
    ra, dec = np.radians(ra), np.radians(dec)
    ra_p, dec_p = np.radians(192.85948), np.radians(27.12825)
    sin_b = np.sin(dec) * np.sin(dec_p) + np.cos(dec) * np.cos(dec_p) * np.cos(ra - ra_p)
    return np.degrees(np.arcsin(np.clip(sin_b, -1.0, 1.0)))


def ecliptic_latitude(ra, dec) -> np.ndarray:
    """Ecliptic latitude [deg] (mean obliquity of J2000)."""
    ra, dec, eps = np.radians(ra), np.radians(dec), np.radians(OBLIQUITY_DEG)
    sin_beta = np.sin(dec) * np.cos(eps) - np.cos(dec) * np.sin(eps) * np.sin(ra)
    return np.degrees(np.arcsin(np.clip(sin_beta, -1.0, 1.0)))


def depth_factor(ra, dec) -> np.ndarray:
    """Planck's matched-filter noise at (ra, dec) relative to the typical sky (see docstring)."""
    beta = np.abs(ecliptic_latitude(ra, dec))
    b = np.abs(galactic_latitude(ra, dec))
    scan = (1 + 3 * np.exp(-((90 - beta) ** 2) / (2 * 15.0**2))) ** -0.5
    return scan * (1 + 0.3 * np.exp(-b / 15.0))


def sigma_y_arcmin2(theta500_arcmin, ra, dec) -> np.ndarray:
    """Y5R500 noise [arcmin^2] of the Planck matched filter for a cluster of angular size theta500."""
    size = (1 + (np.asarray(theta500_arcmin) / SIGMA_Y_SCALE) ** 2) ** (SIGMA_Y_INDEX / 2)
    return SIGMA_Y_COMPACT * size * depth_factor(ra, dec)


def own_cutout_noise(spec: UniverseSpec, c: pd.DataFrame, theta500_arcmin) -> np.ndarray:
    """The matched-filter S/N of the noise alone in each cluster's own y-map cutout, at the
    filter size nearest its theta500: Planck's detection noise is the noise of the same sky as
    the cutout, so a cluster that the catalogue scatters up is bright in its cutout too."""
    from survey_mass.infer.sz_snr import CLUSTER_FWHM_ARCMIN, snr_per_size

    full = SZ_GRID + 2 * sz.PAD
    maps = [sz.cluster_noise(spec.seed, s, "v2") for s in c["stream"]]
    crops = np.asarray(maps).reshape(-1, full, full)[:, sz.PAD : -sz.PAD, sz.PAD : -sz.PAD]
    size = np.abs(np.subtract.outer(theta500_arcmin, CLUSTER_FWHM_ARCMIN)).argmin(axis=1)
    return snr_per_size(crops, np)[np.arange(len(crops)), size]


def psz2_v2(spec: UniverseSpec, c: pd.DataFrame, rng: np.random.Generator):
    """PSZ2 rows of clusters ``c`` and the selection (same columns as v1's)."""
    n = len(c)
    z = c["z"].to_numpy()
    d_a = angular_diameter_distance_mpc(z)
    theta500 = np.degrees(c["r500_mpc"].to_numpy() / d_a) * 60.0  # arcmin
    arcmin2 = (1 * u.arcmin**2).to_value(u.sr)
    y5 = sz.y5r500_sr(c) / arcmin2
    ra_true, dec_true = true_centres(c)
    sigma_y = sigma_y_arcmin2(theta500, ra_true, dec_true)
    noise = rng.standard_normal(n)
    seen = y5 / sigma_y >= OWN_NOISE_MIN_SNR
    noise[seen] = own_cutout_noise(spec, c[seen], theta500[seen])
    y_obs = y5 + sigma_y * noise
    snr = y_obs / sigma_y
    unmasked = np.abs(galactic_latitude(ra_true, dec_true)) >= PSZ2_MASK_B_DEG
    keep = (snr >= PSZ2_SNR_MIN) & unmasked
    known_z = rng.random(n) < 0.75
    y_sph_da2 = (
        np.maximum(y_obs, 1e-3 * sigma_y) * arcmin2 / sz.y5r500_over_ysph("universal") * d_a**2
    )
    msz = np.where(known_z, physics_v2.m_hse_from_y(y_sph_da2, z), np.nan)
    msz_err = msz * sigma_y / np.maximum(y_obs, sigma_y) / physics_v2.YM_SLOPE
    pos_err = np.maximum(4.0 * np.sqrt(PSZ2_SNR_MIN / np.maximum(snr, 1.0)), 0.7) / 60.0  # deg
    dec = dec_true + pos_err / np.sqrt(2) * rng.standard_normal(n)
    ra = (
        ra_true + pos_err / np.sqrt(2) * rng.standard_normal(n) / np.cos(np.radians(dec_true))
    ) % 360
    return pd.DataFrame(
        {
            "INDEX": _number(c["target_id"]),
            "name": "",
            "RA": ra,
            "dec": dec,
            "redshift": np.where(known_z, z, np.nan),
            "pos_err": pos_err,
            "r500": np.where(known_z, _r500_deg(np.log10(np.where(known_z, msz, 1e14)), z), np.nan),
            "MSZ": msz / 1e14,
            "MSZ_ERR_UP": msz_err / 1e14,
            "MSZ_ERR_LOW": msz_err / 1e14,
            "Y5R500": y_obs * 1e3,
            "Y5R500_ERR": sigma_y * 1e3,
            "SNR": snr,
            "target_id": c["target_id"].to_numpy(),
        }
    ), keep


def redmapper_v2(spec: UniverseSpec, c: pd.DataFrame, rng: np.random.Generator):
    """redMaPPer rows of clusters ``c`` and the selection (same columns as v1's)."""
    n = len(c)
    z = c["z"].to_numpy()
    members = np.array(
        [
            optical.lambda_members(s, r, spec.seed)
            for s, r in zip(c["stream"], c["richness_true"], strict=True)
        ],
        np.int64,
    )
    scale = physics_v2.depth_scale(z)
    seen = rng.binomial(members, 1.0 / scale)
    projected = rng.random(n) < 0.1 + 0.3 * z
    lam_seen = seen + projected * rng.exponential(0.3 * np.maximum(seen, 1.0))
    lam_seen = lam_seen + 0.4 * np.sqrt(seen) * rng.standard_normal(n)
    lam = lam_seen * scale
    z_lambda = z + 0.01 * (1 + z) * rng.standard_normal(n)
    z_lo, z_hi = physics_v2.REDMAPPER_Z_RANGE_V2
    keep = (lam_seen >= REDMAPPER_LAMBDA_MIN) & (z_lambda >= z_lo) & (z_lambda <= z_hi)
    log_m = np.log10(8e14) + (np.log(np.maximum(lam, 1.0)) - 4.80) / 0.73 / np.log(10)
    return pd.DataFrame(
        {
            "ID": _number(c["target_id"]),
            "name": "",
            "RA": c["ra"].to_numpy(),
            "dec": c["dec"].to_numpy(),
            "redshift": z_lambda,
            "lambda": lam,
            "r500": _r500_deg(log_m, np.clip(z_lambda, 1e-3, None)),
            "target_id": c["target_id"].to_numpy(),
        }
    ), keep


V2_MAKERS = {"psz2": psz2_v2, "redmapper": redmapper_v2}
