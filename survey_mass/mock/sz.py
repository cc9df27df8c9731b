"""Planck-like Compton-y maps of mock clusters.

A ``constants.SZ_GRID`` square map at ``constants.PLANCK_PIXEL`` (a fixed *angular* scale, as the
Planck y-map is, so high-z clusters are unresolved by the beam) TAN-projected on the catalogued
position. Signal: the Arnaud et al. 2010 (A&A 517, A92) GNFW pressure profile integrated along the
line of sight out to 5 R500, with the universal, cool-core or morphologically-disturbed parameter
set by the cluster's dynamical state, elliptical in projection, centred on the true (mis-centred)
position, normalised to the hidden Y_sph(R500) = ``y500_da2`` / D_A^2, plus an offset sub-clump in
mergers. Then a Gaussian beam of ``constants.PLANCK_BEAM_FWHM`` and a Gaussian random noise field
with a red + beamed-white + pixel-white power spectrum (see ``noise_cl``); with v2 physics the noise
has the real Planck cutout's power spectrum instead (:mod:`.sz_v2`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from survey_mass.constants import (
    COSMOLOGY,
    PLANCK_BEAM_FWHM,
    PLANCK_PIXEL,
    SZ_GRID,
    SZ_NOISE_ELL_KNEE,
    SZ_NOISE_RED_INDEX,
    SZ_PIXEL_NOISE,
    SZ_WHITE_NOISE,
)
from survey_mass.mock.compiled import gnfw_pixel_sums
from survey_mass.mock.sz_v2 import noise_map_v2
from survey_mass.mock.universe import LX_SLOPE, Y_SLOPE
from survey_mass.physics.cosmology import angular_diameter_distance_mpc
from survey_mass.wcs import tan_wcs

INSTRUMENT_STREAM = 2  # keys this instrument's noise stream per cluster
#: GNFW (c500, gamma, alpha, beta) of Arnaud et al. 2010: eq. 12 (universal) and appendix C.
GNFW_SHAPES: dict[str, tuple[float, float, float, float]] = {
    "universal": (1.177, 0.3081, 1.0510, 5.4905),
    "cool_core": (1.128, 0.7736, 1.2223, 5.4905),
    "disturbed": (1.083, 0.3798, 1.4063, 5.4905),
}
TRUNCATION_R500 = 5.0  # the pressure sphere is cut at 5 R500 (as Planck's Y5R500)
PAD = 16  # pixels of margin each side: the beam and noise are made on a 128^2 periodic grid
SUPERSAMPLE = 3


def beam_sigma_rad() -> float:
    return float(PLANCK_BEAM_FWHM.to_value(u.rad)) / np.sqrt(8 * np.log(2))


@cache
def gnfw_projected(shape: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y(X), Y_cyl(X)) for the ``shape`` profile, X = R / R500 in projection.

    ``y`` is normalised so that the spherical Y(R500) is 1: a map ``y(theta/theta500) * Y_sph /
    theta500^2`` carries the integral ``Y_sph * Y_cyl(X)`` inside X. Integrals run on log grids
    (the central pressure cusp ~ r^-gamma is integrable).
    """
    c, gamma, alpha, beta = GNFW_SHAPES[shape]

    def pressure(x):
        cx = c * x
        return cx**-gamma * (1 + cx**alpha) ** ((gamma - beta) / alpha)

    xs = np.geomspace(1e-8, 1.0, 4000)
    y_sph = 4 * np.pi * np.trapezoid(pressure(xs) * xs**3, np.log(xs))
    big_x = np.geomspace(1e-4, TRUNCATION_R500, 400)
    los_max = np.sqrt(np.clip(TRUNCATION_R500**2 - big_x**2, 0.0, None))
    t = np.linspace(0.0, 1.0, 1500)[None, :]
    # l = los_max * (exp(k t) - 1) / (exp(k) - 1): dense near l = 0 where the cusp sits
    k = 14.0
    ell = los_max[:, None] * np.expm1(k * t) / np.expm1(k)
    dl_dt = los_max[:, None] * k * np.exp(k * t) / np.expm1(k)
    y_los = 2 * np.trapezoid(pressure(np.hypot(big_x[:, None], ell)) * dl_dt, t, axis=1)
    y = y_los / y_sph
    inner = np.pi * big_x[0] ** 2 * y[0]
    integrand = 2 * np.pi * y * big_x**2  # d Y_cyl / d ln X
    y_cyl = inner + np.concatenate(
        [[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(np.log(big_x)))]
    )
    return big_x, y, y_cyl


def profile_shape(state: pd.Series) -> str:
    """Arnaud et al. 2010 parameter set for the cluster's dynamical state."""
    if state.merger:
        return "disturbed"
    return "cool_core" if state.cool_core else "universal"


def y5r500_over_ysph(shape: str) -> float:
    """Y_cyl(5 R500) / Y_sph(R500) of a profile (~1.8 for the universal one, Arnaud et al. 2010)."""
    _, _, y_cyl = gnfw_projected(shape)
    return float(y_cyl[-1])


def y5r500_sr(clusters: pd.DataFrame) -> np.ndarray:
    """Total Y inside 5 R500 [sr] of each cluster: main halo plus any merging sub-clump."""
    d_a = angular_diameter_distance_mpc(clusters["z"].to_numpy())
    y_sph = clusters["y500_da2"].to_numpy() / d_a**2
    merger = clusters["merger"].to_numpy(bool)
    cool = clusters["cool_core"].to_numpy(bool)
    ratio = np.where(
        merger,
        y5r500_over_ysph("disturbed"),
        np.where(cool, y5r500_over_ysph("cool_core"), y5r500_over_ysph("universal")),
    )
    mu = np.where(merger, clusters["sub_fraction"].to_numpy(float), 0.0) ** (1.0 / LX_SLOPE)
    return y_sph * (ratio + mu**Y_SLOPE * y5r500_over_ysph("universal"))


def y_sph_sr(state: pd.Series) -> float:
    """The hidden spherical Y(R500) [sr] of the main halo."""
    d_a = COSMOLOGY.angular_diameter_distance(state.z).to_value(u.Mpc)
    return float(state.y500_da2) / d_a**2


@cache
def _profile_table(shape: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log X, y(X), slopes of y between the log X nodes) of :func:`gnfw_projected`, as np.interp
    interpolates them."""
    big_x, y_prof, _ = gnfw_projected(shape)
    log_x = np.log(big_x)
    table = (log_x, y_prof.copy(), (y_prof[1:] - y_prof[:-1]) / (log_x[1:] - log_x[:-1]))
    for column in table:
        column.flags.writeable = False  # shared by every call
    return table


def _gnfw_map(grid, offsets, centre, half, theta500, y_total, shape, ellipticity=0.0, angle=0.0):
    """Pixel-averaged y of one GNFW halo centred at ``centre`` (rad) on the supersampled grid.

    Sample (a, b) of pixel (i, j) sits at ``(grid[j] + offsets[b], grid[i] + offsets[a])``;
    ``half`` is the distance from the halo's centre to the nearest grid edge [rad]. The samples'
    sum is rescaled to the exact integral inside the largest ellipse within the grid, so a cusp
    smaller than a sub-pixel keeps its flux.
    """
    big_x, _, y_cyl = gnfw_projected(shape)
    q = 1.0 - ellipticity
    x_in = min(TRUNCATION_R500, half * np.sqrt(q) / theta500)
    halo = (*centre, q, np.cos(angle), np.sin(angle), theta500)
    sums, inside = gnfw_pixel_sums(grid, offsets, halo, *_profile_table(shape), x_in)
    scale = y_total / theta500**2
    if x_in > 10 * big_x[0]:
        sample_area = (PLANCK_PIXEL.to_value(u.rad) / SUPERSAMPLE) ** 2
        measured = inside * scale * sample_area
        exact = y_total * float(np.interp(np.log(x_in), np.log(big_x), y_cyl))
        if measured > 0:
            scale = scale * (exact / measured)
    return sums * (scale / offsets.size**2)


def signal_map(state: pd.Series, npix: int = SZ_GRID + 2 * PAD) -> np.ndarray:
    """Noiseless, unbeamed y averaged over ``npix``^2 Planck pixels centred on the catalogued position."""
    pixel = PLANCK_PIXEL.to_value(u.rad)
    d_a = COSMOLOGY.angular_diameter_distance(state.z).to_value(u.Mpc)
    offsets = ((np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5) * pixel
    grid = (np.arange(npix) - (npix - 1) / 2) * pixel
    # the true centre sits off the catalogued one by the mis-centring (as in the X-ray image)
    cx = state.miscentre_mpc * np.cos(state.miscentre_angle) / d_a
    cy = state.miscentre_mpc * np.sin(state.miscentre_angle) / d_a
    theta500 = state.r500_mpc / d_a
    half = npix / 2 * pixel
    ymap = _gnfw_map(
        grid,
        offsets,
        (cx, cy),
        half - max(abs(cx), abs(cy)),
        theta500,
        y_sph_sr(state),
        profile_shape(state),
        state.ellipticity,
        state.position_angle,
    )
    if state.merger:
        # the sub-clump of mass ratio mu carries L_X ~ mu^LX_SLOPE (X-ray) and Y ~ mu^Y_SLOPE
        mu = state.sub_fraction ** (1.0 / LX_SLOPE)
        sx = cx + state.sub_offset_r500 * state.r500_mpc * np.cos(state.sub_angle) / d_a
        sy = cy + state.sub_offset_r500 * state.r500_mpc * np.sin(state.sub_angle) / d_a
        ymap = ymap + _gnfw_map(
            grid,
            offsets,
            (sx, sy),
            half - max(abs(sx), abs(sy)),
            theta500 * mu ** (1 / 3),
            y_sph_sr(state) * mu**Y_SLOPE,
            "universal",
        )
    return ymap


def _ell_grid(npix: int) -> np.ndarray:
    """Multipole l = 2 pi |k| of each rfft2 mode of an ``npix``^2 map at the Planck pixel."""
    pixel = PLANCK_PIXEL.to_value(u.rad)
    ky = np.fft.fftfreq(npix, d=pixel)
    kx = np.fft.rfftfreq(npix, d=pixel)
    return 2 * np.pi * np.hypot(ky[:, None], kx[None, :])


@cache
def _beam_transfer(npix: int) -> np.ndarray:
    """B_l of each rfft2 mode of an ``npix``^2 map (the same for every cluster)."""
    transfer = np.exp(-0.5 * (_ell_grid(npix) * beam_sigma_rad()) ** 2)
    transfer.flags.writeable = False  # shared by every call
    return transfer


def beam_convolve(ymap: np.ndarray) -> np.ndarray:
    """Convolve with the Gaussian beam, B_l = exp(-l^2 sigma^2 / 2) (periodic: pad the input)."""
    return np.fft.irfft2(np.fft.rfft2(ymap) * _beam_transfer(ymap.shape[0]), s=ymap.shape)


def noise_cl(ell: np.ndarray) -> np.ndarray:
    """Angular power spectrum C_l [sr] of the correlated part of the y-map noise.

    ``C_white B_l^2 (1 + (l_knee/l)^n)``, with C_white = sigma_w^2 4 pi sigma_beam^2 so that the
    beamed white part alone has ``SZ_WHITE_NOISE`` rms per pixel; the red term stands for residual
    Galactic dust and CIB in the component-separated map. The l = 0 mode is zero (zero-mean maps).
    """
    sigma_b = beam_sigma_rad()
    c_white = SZ_WHITE_NOISE**2 * 4 * np.pi * sigma_b**2
    with np.errstate(divide="ignore"):
        red = np.where(
            ell > 0, (SZ_NOISE_ELL_KNEE / np.maximum(ell, 1e-30)) ** SZ_NOISE_RED_INDEX, 0.0
        )
    return np.where(ell > 0, c_white * np.exp(-((ell * sigma_b) ** 2)) * (1 + red), 0.0)


def noise_map(rng: np.random.Generator, npix: int) -> np.ndarray:
    """A Gaussian noise realisation with power ``noise_cl`` plus white ``SZ_PIXEL_NOISE``."""
    pixel_sr = PLANCK_PIXEL.to_value(u.rad) ** 2
    white = rng.standard_normal((npix, npix))
    shaped = np.fft.irfft2(
        np.fft.rfft2(white) * np.sqrt(noise_cl(_ell_grid(npix)) / pixel_sr), s=(npix, npix)
    )
    return shaped + SZ_PIXEL_NOISE * rng.standard_normal((npix, npix))


def y_map(state: pd.Series, seed: int, *, beam: bool = True, noise: bool = True) -> np.ndarray:
    """The ``SZ_GRID``^2 Compton-y map of one cluster (beam and noise can be left out for tests)."""
    full = signal_map(state)
    if beam:
        full = beam_convolve(full)
    if noise:
        full = full + cluster_noise(seed, state.stream, state.get("physics", "v1"))
    return full[PAD:-PAD, PAD:-PAD]


def cluster_noise(seed: int, stream: int, physics: str) -> np.ndarray:
    """The noise of one cluster's y map on the padded grid, from its own stream: what ``y_map``
    adds, and what the v2 mock PSZ2 filters for the same cluster's detection noise."""
    rng = np.random.default_rng([seed, int(stream), INSTRUMENT_STREAM])
    make_noise = noise_map_v2 if physics == "v2" else noise_map
    return make_noise(rng, SZ_GRID + 2 * PAD)


def angular_grid_wcs(ra: float, dec: float, scale: u.Quantity, npix: int) -> WCS:
    """TAN WCS of an ``npix`` square grid of ``scale`` pixels centred on (ra, dec)."""
    return tan_wcs(ra, dec, scale.to_value(u.deg), npix)


def sz_hdul(state: pd.Series, seed: int) -> fits.HDUList:
    """The mock Planck y-map cutout of one cluster, as FITS with a TAN WCS."""
    image = y_map(state, seed).astype(np.float32)
    header = angular_grid_wcs(state.ra, state.dec, PLANCK_PIXEL, SZ_GRID).to_header()
    fwhm_deg = PLANCK_BEAM_FWHM.to_value(u.deg)
    header["TELESCOP"] = "Planck"
    header["BUNIT"] = ("Compton-y", "dimensionless")
    header["BEAMFWHM"] = (PLANCK_BEAM_FWHM.to_value(u.arcmin), "[arcmin] map resolution")
    header["BMAJ"] = (fwhm_deg, "[deg] beam FWHM")
    header["BMIN"] = (fwhm_deg, "[deg] beam FWHM")
    header["NOISEWHT"] = (SZ_WHITE_NOISE, "rms of the beamed white noise per pixel")
    if state.get("physics", "v1") == "v2":
        header["NOISEWHT"] = (0.0, "v2: no separate white term (see NOISEMOD)")
        header["NOISEMOD"] = ("real-cutout-cl", "v2 noise: the real MILCA cutout's C_l")
    header["OBJECT"] = state.target_id
    return fits.HDUList([fits.PrimaryHDU(image, header=header)])
