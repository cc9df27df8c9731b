"""SDSS-like ugriz image cubes of mock clusters.

Grid: a band-first cube (5, 128, 128) in nanomaggies whose pixel is ``binning(z)`` x 0.396" SDSS
pixels, ``binning = ceil(theta(OPTICAL_APERTURE) / (128 x 0.396"))``, so the cube always covers at
least the 3 Mpc physical aperture (between 3.0 and 3.3 Mpc) with a whole number of native pixels
(8 at z = 1, ~100 at z = 0.03), and the noise of a binned pixel is that of a sum of native ones.

Contents: the cluster's red-sequence members (NFW number profile, Schechter luminosities, richness
from the hidden ``richness_true``), some blue members, a BCG whose luminosity follows mass with
its own scatter, a second bright galaxy and a member sub-group in mergers; field galaxies and stars
from number counts; every object a Gaussian (intrinsic size + 1.4" PSF) integrated over pixels;
Gaussian sky noise from the SDSS 5-sigma depths. Colours and K-corrections come from synthetic
photometry of two toy SEDs (old red population, star-forming) through top-hat ugriz filters, which
reproduces the observed red sequence (g-r 1.0, 1.55, 1.85 at z = 0.1, 0.3, 0.4; r-i 0.9, 1.15 at
z = 0.5, 0.6; Rykoff et al. 2014). No Galactic extinction, no saturation, no evolution of colours.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.io import fits
from scipy.special import erf

from survey_mass.constants import (
    COSMOLOGY,
    OPTICAL_APERTURE,
    OPTICAL_GRID,
    SDSS_BAND_EDGES,
    SDSS_BANDS,
    SDSS_PIXEL,
    SDSS_PSF_FWHM,
)
from survey_mass.mock.universe import LX_SLOPE
from survey_mass.mock.xray import physical_grid_wcs
from survey_mass.physics.cosmology import distance_modulus
from survey_mass.physics.sdss import native_noise

INSTRUMENT_STREAM = 3  # keys this instrument's noise (and field) stream per cluster
MEMBER_STREAM = 4  # keys the physical member catalogue, shared with the mock redMaPPer

#: Toy SEDs, AB magnitude (arbitrary zero) at rest-frame wavelengths [Angstrom], interpolated in
#: log(lambda): an old population with a 4000 A break (z = 0 colours of an E galaxy: u-g 1.86,
#: g-r 0.77, r-i 0.45, i-z 0.34; Fukugita et al. 1995) and a star-forming one (g-r 0.58).
SED_WAVELENGTH = (1200, 2000, 2800, 3500, 3950, 4050, 4600, 5500, 6500, 7500, 9000, 11000, 16000)
SED_AB = {
    "red": (7.5, 6.0, 4.6, 2.85, 2.55, 1.65, 1.15, 0.6, 0.2, -0.1, -0.42, -0.7, -1.1),
    "blue": (2.6, 2.35, 2.1, 1.9, 1.7, 1.3, 1.0, 0.55, 0.27, 0.08, -0.12, -0.32, -0.6),
}
Z_TABLE = np.linspace(0.0, 3.0, 601)

#: Member luminosity function: Schechter, alpha = -1.0 (Hansen et al. 2009), M*_r = -21.2 at z = 0
#: (Blanton et al. 2003, h = 0.7) brightening passively by 1.2 mag per unit z.
SCHECHTER_ALPHA = -1.0
MSTAR_R0, MSTAR_EVOLUTION = -21.2, 1.2
LAMBDA_LMIN = 0.2  # redMaPPer counts red members above 0.2 L* (Rykoff et al. 2014)
FAINTEST_MEMBER = 0.1  # members are drawn down to 0.1 L*
#: BCG: L ~ M500^0.4 with 0.17 dex scatter (stellar mass - halo mass of BCGs, Kravtsov et al. 2018),
#: M_r = -22.8 at M500 = 3e14 Msun, z = 0.
BCG_MR_PIVOT, BCG_MASS_PIVOT, BCG_SLOPE, BCG_SCATTER_DEX = -22.8, 3e14, 0.4, 0.17
#: Effective radii: members 4 kpc (L/L*)^0.6, BCG 25 kpc (L/L_pivot)^0.8; field 1.2" at r = 20.
MEMBER_RE_KPC, BCG_RE_KPC, FIELD_RE_ARCSEC = 4.0, 25.0, 1.2
#: Field counts per deg^2 per mag: galaxies 1300 x 10^(0.42 (r - 20)) (Yasuda et al. 2001; ~1e4
#: deg^-2 to r = 22.2, as the SDSS photometric catalogue), stars
#: 520 x 10^(0.15 (r - 22)) csc|b| (capped at 4 csc) for 14 < r; median galaxy z 0.05 + 0.06 (r - 16).
GALAXY_COUNTS, GALAXY_COUNT_SLOPE = 1300.0, 0.42
STAR_COUNTS, STAR_COUNT_SLOPE = 520.0, 0.15
BRIGHTEST_FIELD_MAG = 14.0


def binning(z: float) -> int:
    """Native SDSS pixels per side of one cutout pixel at redshift ``z`` (see module docstring)."""
    theta = (OPTICAL_APERTURE / COSMOLOGY.angular_diameter_distance(z) * u.rad).to_value(u.arcsec)
    return max(1, math.ceil(theta / (OPTICAL_GRID * SDSS_PIXEL.to_value(u.arcsec))))


@cache
def k_corrections(kind: str) -> np.ndarray:
    """(len(Z_TABLE), 5): m_band - M_r - DM(z) of a ``kind`` SED, by synthetic AB photometry.

    m_band = M_r + DM + K with K = -2.5 log10[(1+z) <L_nu(lambda/(1+z))>_band / <L_nu>_r,rest],
    band averages per unit ln(nu) over top-hat filters.
    """
    log_knots, mags = np.log(SED_WAVELENGTH), np.asarray(SED_AB[kind])

    def mean_fnu(band: str, z: np.ndarray) -> np.ndarray:
        lam = np.geomspace(*SDSS_BAND_EDGES[band], 120)[None, :] / (1 + z[:, None])
        return np.mean(10 ** (-0.4 * np.interp(np.log(lam), log_knots, mags)), axis=1)

    rest_r = mean_fnu("r", np.zeros(1))
    return np.stack(
        [-2.5 * np.log10((1 + Z_TABLE) * mean_fnu(b, Z_TABLE) / rest_r) for b in SDSS_BANDS], axis=1
    )


def apparent_mags(abs_mag_r, z, red) -> np.ndarray:
    """(n, 5) ugriz AB magnitudes of galaxies of rest-frame absolute r magnitude at redshift z."""
    abs_mag_r, z, red = np.broadcast_arrays(
        np.asarray(abs_mag_r, float), np.asarray(z, float), np.asarray(red, bool)
    )
    k = np.where(red[..., None], _k_at("red", z), _k_at("blue", z))
    return (abs_mag_r + distance_modulus(z))[..., None] + k


def _k_at(kind: str, z) -> np.ndarray:
    table = k_corrections(kind)
    return np.stack([np.interp(z, Z_TABLE, table[:, b]) for b in range(len(SDSS_BANDS))], axis=-1)


def red_sequence_colours(z) -> np.ndarray:
    """(..., 4) observed u-g, g-r, r-i, i-z of the red sequence at ``z``."""
    k = _k_at("red", np.asarray(z, float))
    return k[..., :-1] - k[..., 1:]


def mstar_r(z) -> np.ndarray:
    """Characteristic absolute r magnitude of cluster members at ``z`` (passive evolution)."""
    return MSTAR_R0 - MSTAR_EVOLUTION * np.asarray(z, float)


def r_lambda_mpc(richness) -> np.ndarray:
    """redMaPPer's counting radius R_lambda = 1.0 (lambda/100)^0.2 h^-1 Mpc (Rykoff et al. 2014)."""
    return 1.0 / 0.7 * (np.asarray(richness, float) / 100.0) ** 0.2


@lru_cache(maxsize=8)
def _schechter_inverse_cdf(x_min: float, x_max: float):
    x = np.geomspace(x_min, x_max, 2000)
    pdf = x ** (SCHECHTER_ALPHA + 1) * np.exp(-x)  # per d ln x
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(np.log(x)))])
    return cdf / cdf[-1], x, cdf[-1]


def schechter_number(x_min: float, x_max: float = 30.0) -> float:
    """Number of members (arbitrary units) between ``x_min`` and ``x_max`` L*."""
    return _schechter_inverse_cdf(float(x_min), float(x_max))[2]


def _schechter_draw(rng, n: int, x_min: float, x_max: float = 30.0) -> np.ndarray:
    cdf, x, _ = _schechter_inverse_cdf(x_min, x_max)
    return np.interp(rng.random(n), cdf, x)


def _projected_nfw_radii(rng, n: int, r_s: float, r_max: float) -> np.ndarray:
    """Radii [Mpc] drawn from a projected NFW number profile truncated at ``r_max``."""
    xs = np.geomspace(1e-4, r_max / r_s, 256)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(
            xs < 1,
            np.arccosh(1 / np.minimum(xs, 1 - 1e-12)) / np.sqrt(np.abs(1 - xs**2)),
            np.arccos(1 / np.maximum(xs, 1 + 1e-12)) / np.sqrt(np.abs(xs**2 - 1)),
        )
    enclosed = np.log(xs / 2) + h  # projected NFW mass inside X (Bartelmann 1996)
    enclosed = np.maximum.accumulate(enclosed - enclosed[0])
    return r_s * np.interp(rng.random(n) * enclosed[-1], enclosed, xs)


def _place(rng, radii, ellipticity: float, angle: float, centre: tuple[float, float]):
    """Elliptical positions (as the X-ray model: major axis at ``angle`` from +x) around centre."""
    phi = rng.uniform(0, 2 * np.pi, len(radii))
    q = 1.0 - ellipticity
    xp, yp = radii * np.cos(phi) / np.sqrt(q), radii * np.sin(phi) * np.sqrt(q)
    c, s = np.cos(angle), np.sin(angle)
    return centre[0] + c * xp - s * yp, centre[1] + s * xp + c * yp


def _member_rng(stream: int, richness: float, seed: int) -> tuple[np.random.Generator, int]:
    """The member stream and its first draw, the number of lambda members ~ Poisson(lambda)."""
    rng = np.random.default_rng([seed, int(stream), MEMBER_STREAM])
    return rng, int(rng.poisson(float(richness)))


def lambda_members(stream: int, richness: float, seed: int) -> int:
    """How many red members >= 0.2 L* inside R_lambda a cluster has (cheap: one draw)."""
    return _member_rng(stream, richness, seed)[1]


def _bcg_magnitude(log10_m500: float, z: float, rng) -> float:
    """Rest-frame M_r of the BCG: brighter with mass (L ~ M^BCG_SLOPE), passively fading."""
    return (
        BCG_MR_PIVOT
        - 2.5 * BCG_SLOPE * np.log10(10**log10_m500 / BCG_MASS_PIVOT)
        - MSTAR_EVOLUTION * z
        + 2.5 * BCG_SCATTER_DEX * rng.standard_normal()
    )


def members(state: pd.Series, seed: int) -> pd.DataFrame:
    """The cluster's galaxies: offsets from the catalogued centre [Mpc] along +column / +row,
    rest-frame M_r, red or blue, BCG flag, and ``lambda_member`` (red, >= 0.2 L*, inside R_lambda).

    Physical, not noise: the mock redMaPPer counts the same galaxies that the image shows.
    """
    rng, n_bright = _member_rng(state.stream, state.richness_true, seed)
    z, lam = float(state.z), float(state.richness_true)
    mstar = float(mstar_r(z))
    centre = (
        state.miscentre_mpc * np.cos(state.miscentre_angle),
        state.miscentre_mpc * np.sin(state.miscentre_angle),
    )
    r_max = float(r_lambda_mpc(lam))
    r_s = state.r500_mpc / state.c500
    faint_ratio = schechter_number(FAINTEST_MEMBER) / schechter_number(LAMBDA_LMIN) - 1
    n_faint = rng.poisson(lam * faint_ratio)
    f_blue = 0.1 + 0.4 * min(z, 1.0)  # Butcher-Oemler-like blue fraction
    n_blue = rng.poisson((n_bright + n_faint) * f_blue / (1 - f_blue))
    lum = np.concatenate(
        [
            _schechter_draw(rng, n_bright, LAMBDA_LMIN),
            _schechter_draw(rng, n_faint, FAINTEST_MEMBER, LAMBDA_LMIN),
            _schechter_draw(rng, n_blue, FAINTEST_MEMBER),
        ]
    )
    red = np.arange(lum.size) < n_bright + n_faint
    radii = _projected_nfw_radii(rng, lum.size, r_s, r_max)
    radii[~red] = _projected_nfw_radii(rng, int((~red).sum()), 2 * r_s, r_max)  # bluer, wider
    x, y = _place(rng, radii, state.ellipticity, state.position_angle, centre)
    in_sub = np.zeros(lum.size, bool)
    if state.merger:
        # a sub-group of mass ratio mu = sub_fraction^(1/LX_SLOPE), richness ~ mu^0.83
        mu = state.sub_fraction ** (1.0 / LX_SLOPE)
        in_sub = rng.random(lum.size) < mu**0.83 / (1 + mu**0.83)
        sub_centre = (
            centre[0] + state.sub_offset_r500 * state.r500_mpc * np.cos(state.sub_angle),
            centre[1] + state.sub_offset_r500 * state.r500_mpc * np.sin(state.sub_angle),
        )
        sx, sy = _place(rng, radii[in_sub] * mu ** (1 / 3), 0.0, 0.0, sub_centre)
        x[in_sub], y[in_sub] = sx, sy
    bcg_mag = _bcg_magnitude(state.log10_m500, z, rng)
    table = pd.DataFrame(
        {
            "x_mpc": np.concatenate([[centre[0]], x]),
            "y_mpc": np.concatenate([[centre[1]], y]),
            "abs_mag_r": np.concatenate([[bcg_mag], mstar - 2.5 * np.log10(lum)]),
            "red": np.concatenate([[True], red]),
            "bcg": np.concatenate([[True], np.zeros(lum.size, bool)]),
            "lambda_member": np.concatenate([[False], np.arange(lum.size) < n_bright]),
        }
    )
    if state.merger and in_sub.any():
        # the sub-group's brightest galaxy: 1.5 mag below the BCG, at the sub-group centre
        table.loc[len(table)] = [sub_centre[0], sub_centre[1], bcg_mag + 1.5, True, False, False]
    return table


def _field(rng, area_deg2: float, mag_limit: float, galactic_b_deg: float):
    """Field galaxies and stars brighter than ``mag_limit`` in r: (r mag, z or NaN, red, is_star)."""

    def draw_counts(norm, slope, pivot):
        # dN/dm = norm 10^(slope (m - pivot)) on [BRIGHTEST_FIELD_MAG, mag_limit]
        lo, hi = (10 ** (slope * (m - pivot)) for m in (BRIGHTEST_FIELD_MAG, mag_limit))
        n = rng.poisson(norm * area_deg2 * (hi - lo) / (slope * np.log(10)))
        return pivot + np.log10(lo + rng.random(n) * (hi - lo)) / slope

    galaxies = draw_counts(GALAXY_COUNTS, GALAXY_COUNT_SLOPE, 20.0)
    csc = min(1 / max(abs(np.sin(np.radians(galactic_b_deg))), 1e-3), 4.0)
    stars = draw_counts(STAR_COUNTS * csc, STAR_COUNT_SLOPE, 22.0)
    # redshifts p(z) ~ z^2 exp(-(z/z0)^1.5), median 1.412 z0 = 0.05 + 0.06 (r - 16)
    z0 = np.clip(0.05 + 0.06 * (galaxies - 16.0), 0.03, 0.8) / 1.412
    gz = z0 * rng.gamma(2.0, 1.0, galaxies.size) ** (1 / 1.5)
    red = rng.random(galaxies.size) < np.clip(0.5 - 0.05 * (galaxies - 17.0), 0.2, 0.5)
    return galaxies, np.clip(gz, 1e-3, 2.9), red, stars  # inside the distance table


def _star_colours(rng, n: int) -> np.ndarray:
    """(n, 4) u-g, g-r, r-i, i-z along an approximate stellar locus (Covey et al. 2007)."""
    gr = np.where(rng.random(n) < 0.7, rng.normal(0.45, 0.12, n), rng.uniform(0.6, 1.45, n))
    ri = 0.1 + 0.33 * gr + 3.0 * np.clip(gr - 1.2, 0.0, None)
    return np.stack([np.minimum(0.75 + 1.05 * gr, 2.8), gr, ri, 0.55 * ri], axis=1)


def _mags_from_r_and_colours(r_mag: np.ndarray, colours: np.ndarray) -> np.ndarray:
    u_g, g_r, r_i, i_z = colours.T
    g = r_mag + g_r
    i = r_mag - r_i
    return np.stack([g + u_g, g, r_mag, i, i - i_z], axis=1)


def _gaussian_weights(centre: np.ndarray, sigma: np.ndarray, half: int):
    """Pixel-integrated 1D Gaussian weights on a window of 2*half+1 pixels: (index, weight)."""
    start = np.floor(centre + 0.5).astype(np.int64) - half
    index = start[:, None] + np.arange(2 * half + 1)[None, :]
    edges = index[:, :, None] + np.array([-0.5, 0.5])[None, None, :] - centre[:, None, None]
    cdf = 0.5 * erf(edges / (np.sqrt(2) * sigma[:, None, None]))
    return index, cdf[..., 1] - cdf[..., 0]


def paint(npix: int, col, row, sigma_pix, fluxes) -> np.ndarray:
    """(bands, npix, npix) image of Gaussian sources: ``fluxes`` (n, bands) at (col, row)."""
    image = np.zeros((fluxes.shape[1], npix * npix))
    half = np.clip(np.ceil(3.5 * sigma_pix).astype(int), 1, 30)
    for h in np.unique(half):  # one vectorised pass per window size
        pick = half == h
        iy, wy = _gaussian_weights(row[pick], sigma_pix[pick], int(h))
        ix, wx = _gaussian_weights(col[pick], sigma_pix[pick], int(h))
        inside = ((iy >= 0) & (iy < npix))[:, :, None] & ((ix >= 0) & (ix < npix))[:, None, :]
        flat = (iy[:, :, None] * npix + ix[:, None, :])[inside]
        profile = wy[:, :, None] * wx[:, None, :]
        for b in range(fluxes.shape[1]):
            weights = (profile * fluxes[pick, b][:, None, None])[inside]
            image[b] += np.bincount(flat, weights=weights, minlength=npix * npix)
    return image.reshape(fluxes.shape[1], npix, npix)


def image_cube(
    state: pd.Series, seed: int, *, noise: bool = True, field: bool = True
) -> tuple[np.ndarray, int]:
    """(5, 128, 128) ugriz image [nanomaggy] and the binning; noise and field can be left out."""
    z = float(state.z)
    b = binning(z)
    npix = OPTICAL_GRID
    pixel_arcsec = b * SDSS_PIXEL.to_value(u.arcsec)
    arcsec_per_mpc = (1 * u.Mpc / COSMOLOGY.angular_diameter_distance(z) * u.rad).to_value(u.arcsec)
    psf_sigma = SDSS_PSF_FWHM.to_value(u.arcsec) / np.sqrt(8 * np.log(2))
    sigma_pix = native_noise() * b
    rng = np.random.default_rng([seed, int(state.stream), INSTRUMENT_STREAM])

    gal = members(state, seed)
    mags = apparent_mags(gal.abs_mag_r.to_numpy(), z, gal.red.to_numpy())
    lum_rel = 10 ** (-0.4 * (gal.abs_mag_r.to_numpy() - mstar_r(z)))
    re_kpc = np.where(
        gal.bcg,
        BCG_RE_KPC * 10 ** (-0.4 * 0.8 * (gal.abs_mag_r - BCG_MR_PIVOT)),
        MEMBER_RE_KPC * lum_rel**0.6,
    )
    size = re_kpc * 1e-3 * arcsec_per_mpc / 1.177  # Gaussian sigma of equal half-light radius
    col = (npix - 1) / 2 + gal.x_mpc.to_numpy() * arcsec_per_mpc / pixel_arcsec
    row = (npix - 1) / 2 + gal.y_mpc.to_numpy() * arcsec_per_mpc / pixel_arcsec

    if field:
        # field objects fainter than twice the noise of a binned pixel in r are left out
        mag_limit = min(23.0, 22.5 - 2.5 * np.log10(2 * sigma_pix[2]))
        side_deg = npix * pixel_arcsec / 3600
        gal_r, gal_z, gal_red, star_r = _field(rng, side_deg**2, mag_limit, _galactic_b(state))
        k_r = np.where(gal_red, _k_at("red", gal_z)[:, 2], _k_at("blue", gal_z)[:, 2])
        field_mags = apparent_mags(gal_r - distance_modulus(gal_z) - k_r, gal_z, gal_red)
        star_mags = _mags_from_r_and_colours(star_r, _star_colours(rng, star_r.size))
        n_field = gal_r.size + star_r.size
        mags = np.concatenate([mags, field_mags, star_mags])
        field_size = np.concatenate(
            [FIELD_RE_ARCSEC * 10 ** (-0.15 * (gal_r - 20.0)) / 1.177, np.zeros(star_r.size)]
        )
        size = np.concatenate([size, field_size])
        col = np.concatenate([col, rng.uniform(-0.5, npix - 0.5, n_field)])
        row = np.concatenate([row, rng.uniform(-0.5, npix - 0.5, n_field)])
    sigma = np.hypot(size, psf_sigma) / pixel_arcsec
    cube = paint(npix, col, row, sigma, 10 ** (-0.4 * (mags - 22.5)))
    if noise:
        cube += sigma_pix[:, None, None] * rng.standard_normal(cube.shape)
    return cube.astype(np.float32), b


def _galactic_b(state: pd.Series) -> float:
    """Galactic latitude [deg] from the J2000 north Galactic pole (192.85948, +27.12825)."""
    ra, dec = np.radians(state.ra), np.radians(state.dec)
    ra_p, dec_p = np.radians(192.85948), np.radians(27.12825)
    sin_b = np.sin(dec) * np.sin(dec_p) + np.cos(dec) * np.cos(dec_p) * np.cos(ra - ra_p)
    return float(np.degrees(np.arcsin(np.clip(sin_b, -1.0, 1.0))))


def optical_hdul(state: pd.Series, seed: int) -> fits.HDUList:
    """The mock SDSS ugriz cutout of one cluster: band-first cube with a TAN WCS."""
    cube, b = image_cube(state, seed)
    width = (OPTICAL_GRID * b * SDSS_PIXEL).to_value(u.rad) * COSMOLOGY.angular_diameter_distance(
        state.z
    )
    header = physical_grid_wcs(state.ra, state.dec, state.z, width, OPTICAL_GRID).to_header()
    header["TELESCOP"] = "SDSS"
    header["BANDS"] = ("".join(SDSS_BANDS), "band order of axis 3 (band-first cube)")
    header["BUNIT"] = ("nanomaggy", "per cutout pixel; 1 nmgy = 3.631e-6 Jy")
    header["BINNING"] = (b, "native SDSS pixels per cutout pixel side")
    header["PSFFWHM"] = (SDSS_PSF_FWHM.to_value(u.arcsec), "[arcsec] Gaussian PSF")
    for band, sigma in zip(SDSS_BANDS, native_noise() * b, strict=True):
        header[f"SKYSIG_{band.upper()}"] = (float(sigma), f"[nmgy] pixel noise, {band}")
    header["OBJECT"] = state.target_id
    return fits.HDUList([fits.PrimaryHDU(cube, header=header)])
