"""Mass relations that turn external catalogs' columns into log10 M500c [Msun].

Each relation is a plain function of arrays; the catalog definitions (``catalogs/*.toml``) choose one
and give its numbers and citation, so a reader never hides a scaling relation in code.

- :func:`logm500_from_r500_deg`: exact inverse of how abmantz/clusterdb (commit 9fb208b, ``notes/``)
  turned M500 into an angular r500 for PSZ2, ACT DR5, SPT-SZ and redMaPPer, with that repository's
  polynomial fits for rho_c(z) and the comoving distance (h = 0.7).
- :func:`logm500_from_richness`: a power law M = M0 (lambda/lambda0)^F ((1+z)/(1+z0))^G in any
  spherical-overdensity definition, e.g. Simet et al. 2017 (MNRAS 466, 3103; SDSS redMaPPer,
  M200m) or McClintock et al. 2019 (MNRAS 482, 1352; DES Y1 redMaPPer, M200m), converted to M500c
  with an NFW profile and the Duffy et al. 2008 concentration via colossus.
- :func:`theta500`: the angle subtended by R500c, for match radii given as a fraction of R500.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy import units as u
from scipy.interpolate import RegularGridInterpolator

from survey_mass.constants import COSMOLOGY, HUBBLE_H
from survey_mass.physics.cosmology import r500_mpc

#: Exponent the clusterdb scripts used for the cube root (``**0.3333``), kept to invert them exactly.
CLUSTERDB_CUBE_ROOT = 0.3333


def _clusterdb_rho_crit(z):
    """rho_c(z) [Msun/Mpc^3], the polynomial fit used by clusterdb's notes/*.py."""
    return 1.360e11 + 1.224e11 * z + 1.224e11 * z**2 + 4.080e10 * z**3


def _clusterdb_angular_diameter_distance(z):
    """D_A(z) [Mpc] from clusterdb's polynomial comoving distance."""
    comoving = 4272.3498 * z - 1093.4370 * z**2 + 126.0632 * z**3
    return comoving / (1.0 + z)


def logm500_from_r500_deg(r500_deg, z) -> np.ndarray:
    """log10 M500 [Msun] from clusterdb's r500 [deg]; NaN where r500 or z is missing or <= 0."""
    r500_deg = np.asarray(r500_deg, dtype=float)
    z = np.asarray(z, dtype=float)
    ok = (r500_deg > 0) & (z > 0)
    r_mpc = np.radians(np.where(ok, r500_deg, 1.0)) * _clusterdb_angular_diameter_distance(
        np.where(ok, z, 1.0)
    )
    volume_density = 4.0 / 3.0 * np.pi * 500.0 * _clusterdb_rho_crit(np.where(ok, z, 1.0))
    log_m = np.log10(volume_density) + np.log10(r_mpc) / CLUSTERDB_CUBE_ROOT
    return np.where(ok, log_m, np.nan)


def theta500(logm500, z) -> u.Quantity:
    """Angle of R500c for log10 M500c [Msun] at redshift z, in ``constants.COSMOLOGY``."""
    logm500 = np.asarray(logm500, dtype=float)
    z = np.asarray(z, dtype=float)
    d_a = COSMOLOGY.angular_diameter_distance(z).to_value(u.Mpc)
    return (r500_mpc(logm500, z) / d_a * u.rad).to(u.arcsec)


def logm500_from_richness(
    richness,
    z,
    *,
    log10_m0: float,
    pivot: float,
    slope: float,
    m0_per_h: bool,
    mass_definition: str = "500c",
    z_pivot: float | None = None,
    z_slope: float = 0.0,
) -> np.ndarray:
    """log10 M500c [Msun] from a richness power law (NaN where richness or z is missing or <= 0).

    ``log10_m0`` is the mass at ``richness = pivot`` (and ``z = z_pivot``) in the relation's own
    mass definition, in Msun/h when ``m0_per_h`` (h = ``constants.HUBBLE_H``).
    """
    richness = np.asarray(richness, dtype=float)
    z = np.asarray(z, dtype=float)
    ok = (richness > 0) & (z > 0)
    lam = np.where(ok, richness, pivot)
    zz = np.where(ok, z, 0.2)
    log_m = log10_m0 + slope * np.log10(lam / pivot)
    if z_pivot is not None and z_slope:
        log_m = log_m + z_slope * np.log10((1.0 + zz) / (1.0 + z_pivot))
    if m0_per_h:
        log_m = log_m - np.log10(HUBBLE_H)
    if mass_definition != "500c":
        log_m = log_m + _log_ratio_to_500c(mass_definition)(np.column_stack([log_m, zz]))
    return np.where(ok, log_m, np.nan)


@lru_cache(maxsize=4)
def _log_ratio_to_500c(mass_definition: str) -> RegularGridInterpolator:
    """log10(M500c / M_def) on a (log10 M_def [Msun], z) grid: NFW + Duffy et al. 2008 c(M, z).

    The ratio varies slowly with mass and redshift, so a grid interpolation is exact to ~1e-4 dex
    and costs one colossus call per redshift instead of one per cluster.
    """
    from colossus.cosmology import cosmology
    from colossus.halo import mass_adv

    cosmology.setCosmology(
        "survey_mass_relations",
        params=dict(
            flat=True, H0=COSMOLOGY.H0.value, Om0=COSMOLOGY.Om0, Ob0=0.045, sigma8=0.8, ns=0.96
        ),
        persistence="",
    )
    # inside Duffy et al.'s calibrated range (1e11-1e15 Msun/h, z <= 2); linear extrapolation beyond
    log_m = np.linspace(12.5, 15.1, 27)
    z = np.linspace(0.0, 1.9, 39)
    ratio = np.empty((log_m.size, z.size))
    for j, zj in enumerate(z):
        m_h = 10**log_m * HUBBLE_H
        m500, _, _ = mass_adv.changeMassDefinitionCModel(
            m_h, zj, mass_definition, "500c", c_model="duffy08"
        )
        ratio[:, j] = np.log10(m500 / m_h)
    return RegularGridInterpolator((log_m, z), ratio, bounds_error=False, fill_value=None)
