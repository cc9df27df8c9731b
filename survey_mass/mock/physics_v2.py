"""The v2 ("realistic") physics of the mock survey: relations held to the real sky.

Selected by ``UniverseSpec.physics = "v2"``; the v1 relations in :mod:`.universe` stay as they were
(the shipped zoo was trained on them). Every number cites its source; numbers *calibrated* here on
the real catalogs of ``shared/data`` say so, with the measurement that fixed them (README, "How
realistic is the mock survey"; ``survey-mass report --realism`` re-measures them).

- Hydrostatic bias, one model: the SZ signal of a cluster of true mass M is the Planck Y-M relation
  calibrated on *hydrostatic* X-ray masses, evaluated at M_HSE = (1-b) M, and the mock PSZ2 reports
  MSZ = M_HSE(Y_obs) from the same relation (no extra factor): MSZ is hydrostatic-like, biased low
  by (1-b) against the truth, as the real one is against weak lensing.
- Richness: lambda ~ M^(1/1.33) (slope of Simet et al. 2017), with the redshift evolution of
  McClintock et al. 2019, normalised on the real PSZ2 x redMaPPer lambda-MSZ relation.
- L_X: bolometric core-excised L ~ E(z)^(7/3) M^1.6 (self-similar for bolometric L, Pratt et al.
  2009), seen in the *observed* 0.5-7 keV band through a bremsstrahlung spectrum at T(M):
  the K-correction.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import exp1

from survey_mass.physics.cosmology import efunc

# --- hydrostatic bias and Y-M --------------------------------------------------------------
#: (1-b): Planck 2015 results XXIV (A&A 594, A24), sec. 3.3 and table 2 baseline: 0.8 (range 0.7-1).
HSE_ONE_MINUS_B = 0.8
#: Planck 2013 results XX (A&A 571, A20), eq. 7 and table 1 (the relation PSZ2's MSZ uses, Planck
#: 2015 XXVII sec. 7.2.1): E^-beta D_A^2 Y500 / 1e-4 Mpc^2 = 10^Y* [(1-b) M500 / 6e14 Msun]^alpha,
#: log Y* = -0.19, alpha = 1.79, beta = 0.66, with the hydrostatic (1-b) M500 as mass.
YM_LOG_NORM, YM_PIVOT, YM_SLOPE, YM_EZ = -0.19, 6e14, 1.79, 0.66


def y500_da2_hse(m_true, z) -> np.ndarray:
    """Mean D_A^2 Y500 [Mpc^2] of clusters of true M500c [Msun]: the relation at (1-b) M."""
    m_hse = HSE_ONE_MINUS_B * np.asarray(m_true, float)
    return 1e-4 * 10**YM_LOG_NORM * (m_hse / YM_PIVOT) ** YM_SLOPE * efunc(z) ** YM_EZ


def m_hse_from_y(y500_da2, z) -> np.ndarray:
    """The hydrostatic mass [Msun] the relation gives for D_A^2 Y500 [Mpc^2] (PSZ2's MSZ)."""
    y = np.asarray(y500_da2, float) / (1e-4 * 10**YM_LOG_NORM * efunc(z) ** YM_EZ)
    return YM_PIVOT * np.maximum(y, 1e-30) ** (1 / YM_SLOPE)


# --- richness ------------------------------------------------------------------------------
#: lambda = LAMBDA_NORM (M500c / LAMBDA_PIVOT)^LAMBDA_SLOPE ((1+z)/1.35)^LAMBDA_Z_SLOPE.
#: Slope 1/1.33 from Simet et al. 2017 (MNRAS 466, 3103, table 4: M200m ~ lambda^1.33). Redshift
#: evolution: McClintock et al. 2019 (MNRAS 482, 1352, table 4: M ~ ((1+z)/1.35)^-0.30 at fixed
#: lambda), so lambda ~ ((1+z)/1.35)^(0.30/1.33) at fixed mass. Normalisation calibrated on the real
#: lambda-MSZ of PSZ2 x SDSS redMaPPer (median lambda 59 / 86 / 129 in log MSZ 14.3-14.6 /
#: 14.6-14.8 / 14.8-15.2); Simet's own gives lambda = 40 at M500c = 1.65e14 Msun (z 0.2, NFW with
#: Duffy et al. 2008 concentrations), i.e. ~20% richer than calibrated here.
LAMBDA_NORM, LAMBDA_PIVOT, LAMBDA_SLOPE, LAMBDA_Z_SLOPE = 40.0, 2.0e14, 1 / 1.33, 0.30 / 1.33


def richness_mean(m_true, z) -> np.ndarray:
    """Mean true richness (red members >= 0.2 L* inside R_lambda) at true M500c [Msun] and z."""
    m = np.asarray(m_true, float)
    return (
        LAMBDA_NORM
        * (m / LAMBDA_PIVOT) ** LAMBDA_SLOPE
        * ((1 + np.asarray(z, float)) / 1.35) ** LAMBDA_Z_SLOPE
    )


# --- X-ray luminosity, temperature and K-correction ----------------------------------------
#: M-T: Arnaud, Pointecouteau & Pratt 2005 (A&A 441, 893), table 2 (T > 3.5 keV):
#: E(z) M500 = 3.84e14 Msun (kT / 5 keV)^1.71 (h = 0.7).
MT_NORM, MT_SLOPE = 3.84e14, 1.71
#: Free-free Gaunt factor approximated as (E/kT)^-0.3 over 0.1-30 keV (within ~10% of Rybicki &
#: Lightman 1979, fig. 5.2, for kT 2-10 keV); the spectrum dL/dE ~ g exp(-E/kT).
GAUNT_INDEX = 0.3
LX_BAND_KEV = (0.5, 7.0)


def temperature_kev(m_true, z) -> np.ndarray:
    """Spectroscopic temperature [keV] from the M-T relation at true M500c [Msun]."""
    return 5.0 * (np.asarray(m_true, float) * efunc(z) / MT_NORM) ** (1 / MT_SLOPE)


def band_fraction(kt, e_lo, e_hi) -> np.ndarray:
    """Fraction of the bolometric free-free luminosity emitted between e_lo and e_hi [keV].

    int x^-g e^-x dx = Gamma(1-g, x): written with the upper incomplete gamma via scipy for g = 0.3.
    """
    from scipy.special import gammaincc

    a = 1.0 - GAUNT_INDEX
    kt = np.asarray(kt, float)
    return gammaincc(a, np.asarray(e_lo) / kt) - gammaincc(a, np.asarray(e_hi) / kt)


def k_correction(kt, z) -> np.ndarray:
    """L emitted in the observed 0.5-7 keV band over L in the rest-frame 0.5-7 keV band."""
    z1 = 1 + np.asarray(z, float)
    lo, hi = LX_BAND_KEV
    return band_fraction(kt, lo * z1, hi * z1) / band_fraction(kt, lo, hi)


# --- SDSS depth for redMaPPer --------------------------------------------------------------
#: SDSS DR8 redMaPPer is volume-limited to z ~ 0.35 (Rykoff et al. 2014, ApJ 785, 104, sec. 9):
#: beyond, the i-band depth drops members below 0.2 L*; redMaPPer scales lambda up by S(z) and
#: keeps lambda / S(z) >= 20. Here the depth is the i magnitude of a 0.2 L* red galaxy at
#: z = DEPTH_Z; the real catalogue's lowest lambda per z bin (24.8, 31.7, 42.8 at z 0.40, 0.45,
#: 0.50; shared/data/clusterdb/sdss_redmapper.csv.gz) checks S(z) (README).
DEPTH_Z = 0.35
#: The real catalogue's z_lambda range (0.080 - 0.550 in the clusterdb file).
REDMAPPER_Z_RANGE_V2 = (0.08, 0.55)


@cache
def _depth_table() -> tuple[np.ndarray, np.ndarray]:
    from survey_mass.mock import optical

    z = np.linspace(0.02, 1.0, 197)
    i_mag = optical.apparent_mags(optical.mstar_r(z) + 2.5 * np.log10(5.0), z, True)[:, 3]
    limit = np.interp(DEPTH_Z, z, i_mag)
    # luminosity (in L*) of a red member at the limit: brighter than 0.2 L* beyond DEPTH_Z
    x_lim = np.maximum(0.2 * 10 ** (-0.4 * (limit - i_mag)), 0.2)
    return z, exp1(0.2) / exp1(x_lim)  # Schechter alpha = -1: N(>x) ~ E1(x)


def depth_scale(z) -> np.ndarray:
    """redMaPPer's S(z) >= 1: true members >= 0.2 L* per member seen above the depth."""
    grid, scale = _depth_table()
    return np.interp(np.asarray(z, float), grid, scale)
