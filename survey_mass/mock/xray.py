"""Chandra ACIS-I-like 0.5-7 keV photon images of mock clusters.

The image covers ``constants.XRAY_APERTURE`` (a fixed physical width) in ``constants.XRAY_GRID``
pixels at the cluster's redshift, so its angular pixel scale varies with z and is recorded in the
WCS. Components: an elliptical beta model normalised to the core-excised L_X in 0.15-1 R500, a
compact cool-core component, an offset merging sub-clump, a central AGN in some cool cores, field
point sources, and flat particle + sky background; then Poisson noise. No K-correction is applied
(v1). With v2 physics the hidden L_X is already K-corrected (:mod:`.universe`) and every expected
count is multiplied by the ACIS-I exposure map of :mod:`.xray_v2`, written as the EXPMAP extension.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from survey_mass.constants import (
    ACIS_BACKGROUND_RATE,
    ACIS_COUNTS_PER_ERG_CM2,
    COSMOLOGY,
    XRAY_APERTURE,
    XRAY_GRID,
)
from survey_mass.mock.compiled import beta_pixel_mean
from survey_mass.mock.xray_v2 import exposure_map
from survey_mass.wcs import tan_wcs

INSTRUMENT_STREAM = 1  # keys this instrument's noise stream per cluster
SUPERSAMPLE = 3


def physical_grid_wcs(ra: float, dec: float, z: float, width: u.Quantity, npix: int) -> WCS:
    """TAN WCS of an ``npix`` square grid ``width`` wide (physical length) centred on (ra, dec)."""
    scale_deg = (width / npix / COSMOLOGY.angular_diameter_distance(z) * u.rad).to_value(u.deg)
    return tan_wcs(ra, dec, scale_deg, npix)


def _beta_cylinder_flux(radius, rc, beta):
    """Flux of the beta model of :func:`_beta_component` inside a cylinder of ``radius`` (closed form).

    ``[1 - (1 + (R/rc)^2)^(1 - p)] / (p - 1)`` with ``p = 3 beta - 1/2``, written with log1p/expm1
    so that it stays exact as beta -> 1/2 (p -> 1), where it tends to ``ln(1 + (R/rc)^2)``: the
    beta = 1/2 model's total flux diverges, but its flux inside any finite radius does not.
    """
    p = 3 * beta - 0.5
    log_term = np.log1p((radius / rc) ** 2)
    if p == 1:
        return log_term
    return -np.expm1((1 - p) * log_term) / (p - 1)


def _beta_component(x0, y0, rc, beta, ellipticity=0.0, angle=0.0, scale=1.0) -> list[float]:
    """A row of :func:`~survey_mass.mock.compiled.beta_pixel_mean`: ``scale`` times the projected
    beta model ``(1 + r^2/rc^2)^(-p) / (pi rc^2)``, p = 3 beta - 1/2, centred on (x0, y0).

    The elliptical radius keeps the area of each isophote, so the model's flux inside an
    elliptical isophote is :func:`_beta_cylinder_flux` of its circularised radius, and its total
    flux is 1 / (p - 1) where beta > 1/2.
    """
    return [
        x0,
        y0,
        rc,
        3 * beta - 0.5,
        1 - ellipticity,
        np.cos(angle),
        np.sin(angle),
        scale / (np.pi * rc**2),
    ]


def chip_exposure(c: pd.Series, npix: int) -> np.ndarray | None:
    """v2's exposure map of the cutout (None for v1, whose detector sees the whole cutout)."""
    if c.get("physics", "v1") != "v2":
        return None
    return exposure_map(c, npix, _pixel_arcmin(c, npix))


def expected_counts(
    c: pd.Series, npix: int = XRAY_GRID, emap: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Expected photon counts per pixel (cluster + AGN-free background) and the exposure [s];
    ``emap``: the cutout's ``chip_exposure``, when the caller has it already."""
    pixel_mpc = XRAY_APERTURE.to_value(u.Mpc) / npix
    offsets = ((np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5) * pixel_mpc
    grid = (np.arange(npix) - (npix - 1) / 2) * pixel_mpc
    # the cluster's true centre sits off the catalogued (cutout) centre by the mis-centring
    x0 = c.miscentre_mpc * np.cos(c.miscentre_angle)
    y0 = c.miscentre_mpc * np.sin(c.miscentre_angle)
    r500 = c.r500_mpc
    rc = c.core_radius_r500 * r500
    # normalise so the core-excised luminosity is the main component's part in 0.15-1 R500 (the
    # core-excised annulus of Pratt et al. 2009): the core radius and beta then shape the core only.
    # The annulus' flux is finite for every beta >= 1/2, also for beta = 1/2 (the lower clip of the
    # universe's beta) whose total flux diverges: normalising to the total first gave 0/0 there.
    annulus = _beta_cylinder_flux(r500, rc, c.beta) - _beta_cylinder_flux(0.15 * r500, rc, c.beta)
    components = [
        _beta_component(x0, y0, rc, c.beta, c.ellipticity, c.position_angle, c.lx_excised / annulus)
    ]
    # the cool core and the sub-clump carry fractions of L_X as their total flux (p - 1 = 3 beta - 3/2)
    if c.cool_core:
        core = c.core_fraction * c.lx_excised * (3 * 0.7 - 1.5)
        components.append(_beta_component(x0, y0, 0.025 * r500, 0.7, scale=core))
    if c.merger:
        dx = c.sub_offset_r500 * r500 * np.cos(c.sub_angle)
        dy = c.sub_offset_r500 * r500 * np.sin(c.sub_angle)
        sub = c.sub_fraction * c.lx_excised * (3 * 0.67 - 1.5)
        components.append(_beta_component(x0 + dx, y0 + dy, 0.1 * r500, 0.67, scale=sub))
    lum = beta_pixel_mean(grid, offsets, np.asarray(components)) * pixel_mpc**2  # erg/s per pixel
    d_l = COSMOLOGY.luminosity_distance(c.z).to_value(u.cm)
    exposure = c.xray_exposure_ks * 1e3
    counts = lum / (4 * np.pi * d_l**2) * exposure * ACIS_COUNTS_PER_ERG_CM2
    pixel_arcmin = (pixel_mpc * u.Mpc / COSMOLOGY.angular_diameter_distance(c.z) * u.rad).to_value(
        u.arcmin
    )
    counts += ACIS_BACKGROUND_RATE * exposure * pixel_arcmin**2
    if emap is None:
        emap = chip_exposure(c, npix)
    if emap is not None:
        counts = counts * emap
    return counts, exposure


def _pixel_arcmin(c: pd.Series, npix: int) -> float:
    return (XRAY_APERTURE / npix / COSMOLOGY.angular_diameter_distance(c.z) * u.rad).to_value(
        u.arcmin
    )


def photon_image(
    c: pd.Series, seed: int, npix: int = XRAY_GRID, emap: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """A Poisson realisation with point sources: (counts image, exposure [s])."""
    rng = np.random.default_rng([seed, int(c.stream), INSTRUMENT_STREAM])
    if emap is None:
        emap = chip_exposure(c, npix)
    counts, exposure = expected_counts(c, npix, emap)
    image = rng.poisson(counts).astype(np.float32)
    n_agn = rng.poisson(1.5)
    rows, cols = rng.integers(0, npix, n_agn), rng.integers(0, npix, n_agn)
    # field AGN: fluxes from a dN/dS ~ S^-2.5 power law above 1e-15 erg/s/cm^2
    fluxes = 1e-15 * (1 - rng.random(n_agn)) ** (-1 / 1.5)
    agn_counts = rng.poisson(fluxes * exposure * ACIS_COUNTS_PER_ERG_CM2)
    central = rng.poisson(3e-14 * exposure * ACIS_COUNTS_PER_ERG_CM2) if c.central_agn else 0
    if emap is not None:  # no photons where no chip looks
        agn_counts = np.where(emap[rows, cols] > 0, agn_counts, 0)
        central = central if emap[npix // 2, npix // 2] > 0 else 0
    np.add.at(image, (rows, cols), agn_counts)
    if c.central_agn:
        image[npix // 2, npix // 2] += central
    return image, exposure


def xray_hdul(c: pd.Series, seed: int) -> fits.HDUList:
    """The mock Chandra cutout of one cluster, as FITS with a TAN WCS."""
    emap = chip_exposure(c, XRAY_GRID)  # once: the photons and the EXPMAP extension share it
    image, exposure = photon_image(c, seed, XRAY_GRID, emap)
    header = physical_grid_wcs(c.ra, c.dec, c.z, XRAY_APERTURE, XRAY_GRID).to_header()
    header["TELESCOP"] = "CHANDRA"
    header["INSTRUME"] = "ACIS"
    header["BUNIT"] = "count"
    header["EXPOSURE"] = (exposure, "[s] effective exposure")
    header["ENERG_LO"] = (0.5, "[keV]")
    header["ENERG_HI"] = (7.0, "[keV]")
    header["BKGRATE"] = (ACIS_BACKGROUND_RATE, "[count/s/arcmin2] particle+sky background")
    header["OBJECT"] = c.target_id
    hdus = [fits.PrimaryHDU(image, header=header)]
    if emap is not None:
        ext = fits.ImageHDU(emap.astype(np.float32), header=header, name="EXPMAP")  # a copy
        ext.header["BUNIT"] = ("", "fraction of EXPOSURE (0: off the ACIS-I chips)")
        hdus.append(ext)
    return fits.HDUList(hdus)
