"""Summary-statistic mass baselines, measured from the very cutouts the CNNs see.

Each instrument gets one classic mass proxy, measured from its FITS cutout (mock or real: only the
header's WCS and keywords are used), and a power-law scaling relation calibrated on *training*
clusters only:

- X-ray: core-excised luminosity, background-subtracted counts in 0.15-1 R500 around the emission
  centroid, converted to 0.5-7 keV L [erg/s] with the cutout's exposure (no K-correction);
  self-similar scaling L / E(z)^(7/3) (Pratt et al. 2009).
- SZ: aperture Y, the y integral inside theta_ap = sqrt((2 theta500)^2 + FWHM^2) minus the mean of
  the surrounding annulus, as D_A^2 Y [Mpc^2]; scaling D_A^2 Y E(z)^(-2/3) (Arnaud et al. 2010).
- Optical: richness count, red-sequence galaxies (colour within 0.2 mag, widened by photometric
  errors, of the model red sequence; brighter than 0.2 L*, or than the image's completeness limit
  with a Schechter correction) detected within 1 Mpc, minus the density of such galaxies outside
  1.3 Mpc.

The relation is log10 M500 = a + b log10(O / E(z)^p), fitted by least squares of log M on the proxy
(the best linear predictor of mass). Proxies that need R500 use the true R500 of training clusters,
and at prediction iterate R500 <- R500(predicted M) from the fitted relation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage
from scipy.special import erf

from survey_mass.constants import ACIS_COUNTS_PER_ERG_CM2, PLANCK_BEAM_FWHM, SDSS_PSF_FWHM
from survey_mass.mock import optical
from survey_mass.physics.cosmology import (
    angular_diameter_distance_mpc,
    efunc,
    luminosity_distance_mpc,
    r500_mpc,
)
from survey_mass.wcs import header_wcs

LX_CORE, LX_OUTER = 0.15, 1.0  # core-excised annulus [R500]
RICHNESS_RADIUS_MPC, RICHNESS_BACKGROUND_MPC = 1.0, 1.3
RED_SEQUENCE_WIDTH = 0.2  # mag
DETECTION_SNR = 4.0


def _pixel_grid(header: fits.Header, shape: tuple[int, int]):
    """Pixel scale [deg] and each pixel's offset from the cutout centre [pixels] (rows, cols)."""
    wcs = header_wcs(header)
    scale = float(np.mean(proj_plane_pixel_scales(wcs)))
    centre_col, centre_row = wcs.world_to_pixel_values(*wcs.wcs.crval)
    rows, cols = np.indices(shape)
    return scale, rows - float(centre_row), cols - float(centre_col)


def _image(hdul: fits.HDUList) -> np.ndarray:
    data = hdul[0].data
    if data is None:
        raise ValueError(f"cutout {hdul[0].header.get('OBJECT', '?')} has no image data")
    return np.asarray(data, dtype=float)


def core_excised_lx(hdul: fits.HDUList, z: float, r500: u.Quantity) -> u.Quantity:
    """0.5-7 keV luminosity in 0.15-1 R500 from a photon-count cutout with EXPOSURE, BKGRATE."""
    header = hdul[0].header
    for key in ("EXPOSURE", "BKGRATE"):
        if key not in header:
            raise ValueError(f"X-ray cutout lacks header keyword {key}; core-excised L_X needs it")
    image = _image(hdul)
    scale_deg, dy, dx = _pixel_grid(header, image.shape)
    exposure = float(header["EXPOSURE"])
    background = float(header["BKGRATE"]) * exposure * (scale_deg * 60) ** 2  # counts per pixel
    mpc_per_pix = np.radians(scale_deg) * float(angular_diameter_distance_mpc(z))
    r500_pix = r500.to_value(u.Mpc) / mpc_per_pix
    net = image - background
    # centre on the emission: the smoothed peak within 0.8 R500 of the cutout centre, refined by
    # two centroid passes inside 0.15 R500
    smooth = ndimage.gaussian_filter(net, max(0.05 * r500_pix, 1.0))
    smooth[np.hypot(dy, dx) > 0.8 * r500_pix] = -np.inf
    peak = np.unravel_index(np.argmax(smooth), smooth.shape)
    cy, cx = float(dy[peak]), float(dx[peak])
    for _ in range(2):
        near = np.hypot(dy - cy, dx - cx) < 0.15 * r500_pix
        weights = np.clip(net[near], 0, None)
        if weights.sum() > 0:
            cy, cx = (
                float(np.sum(dy[near] * weights) / weights.sum()),
                float(np.sum(dx[near] * weights) / weights.sum()),
            )
    radius = np.hypot(dy - cy, dx - cx) / r500_pix
    counts = net[(radius >= LX_CORE) & (radius < LX_OUTER)].sum()
    d_l_cm = (luminosity_distance_mpc(z) * u.Mpc).to_value(u.cm)
    return counts / (exposure * ACIS_COUNTS_PER_ERG_CM2) * 4 * np.pi * d_l_cm**2 * u.erg / u.s


def aperture_y(hdul: fits.HDUList, z: float, r500: u.Quantity) -> u.Quantity:
    """D_A^2 Y [Mpc^2] in the aperture sqrt((2 theta500)^2 + FWHM^2), local annulus subtracted."""
    image = _image(hdul)
    scale_deg, dy, dx = _pixel_grid(hdul[0].header, image.shape)
    d_a = float(angular_diameter_distance_mpc(z))
    theta500 = np.degrees(r500.to_value(u.Mpc) / d_a)
    fwhm = PLANCK_BEAM_FWHM.to_value(u.deg)
    radius = np.hypot(dy, dx) * scale_deg
    max_radius = 0.5 * min(image.shape) * scale_deg
    theta_ap = min(np.hypot(2 * theta500, fwhm), 0.6 * max_radius)
    inside = radius < theta_ap
    ring = (radius >= 1.2 * theta_ap) & (radius < min(1.2 * theta_ap + fwhm, max_radius))
    level = image[ring].mean() if ring.sum() >= 20 else 0.0
    y_sr = float((image[inside] - level).sum()) * np.radians(scale_deg) ** 2
    return y_sr * d_a**2 * u.Mpc**2


def galaxy_detections(hdul: fits.HDUList) -> dict[str, np.ndarray]:
    """PSF-matched-filter detections on r+i and their ugriz magnitudes (band-first cube).

    Each band is correlated with the pixel-scale PSF (Gaussian, sigma >= 0.6 pixel: in binned
    pixels a point source fills 1-4 of them); flux = sum(w d) / sum(w^2), error sigma / sqrt(sum w^2),
    both divided by the filter's mean response to a point source placed anywhere in a pixel.
    Noise per band is the image's median absolute deviation (valid for mock and real cutouts).
    """
    cube = _image(hdul)
    header = hdul[0].header
    if cube.ndim != 3 or header.get("BANDS", "ugriz") != "ugriz":
        raise ValueError(
            f"richness needs a band-first ugriz cube, got shape {cube.shape} "
            f"with BANDS={header.get('BANDS')!r}"
        )
    scale_arcsec = _pixel_grid(header, cube.shape[1:])[0] * 3600
    psf_fwhm = float(header.get("PSFFWHM", SDSS_PSF_FWHM.to_value(u.arcsec)))
    sigma_k = max(psf_fwhm / np.sqrt(8 * np.log(2)) / scale_arcsec, 0.6)
    offsets = np.arange(-2, 3)
    kernel = np.exp(-0.5 * (offsets[:, None] ** 2 + offsets[None, :] ** 2) / sigma_k**2)
    norm = float((kernel**2).sum())
    # aperture correction: mean response to a unit point source anywhere inside the central pixel
    psf_sigma = max(psf_fwhm / np.sqrt(8 * np.log(2)) / scale_arcsec, 1e-3)
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    edges = offsets[None, :, None] + np.array([-0.5, 0.5])[None, None, :] - sub[:, None, None]
    cdf = 0.5 * erf(edges / (np.sqrt(2) * psf_sigma))
    pix = cdf[..., 1] - cdf[..., 0]  # (sub-position, offset): pixel-integrated 1D PSF
    response = np.einsum("ai,bj,ij->ab", pix, pix, kernel).mean() / norm
    sigma = 1.4826 * np.median(
        np.abs(cube - np.median(cube, axis=(1, 2), keepdims=True)), axis=(1, 2)
    )
    flux = np.stack([ndimage.correlate(band, kernel, mode="constant") / norm for band in cube])
    flux, flux_err = flux / response, sigma / np.sqrt(norm) / response
    detect = (flux[2] / flux_err[2] + flux[3] / flux_err[3]) / np.sqrt(2)
    peaks = (detect == ndimage.maximum_filter(detect, 3)) & (detect > DETECTION_SNR)
    rows, cols = np.nonzero(peaks)
    fluxes = flux[:, rows, cols].T
    with np.errstate(divide="ignore", invalid="ignore"):
        mags = 22.5 - 2.5 * np.log10(np.where(fluxes > 0, fluxes, np.nan))
    return {"row": rows, "col": cols, "flux": fluxes, "mag": mags, "flux_err": flux_err}


def richness_count(hdul: fits.HDUList, z: float) -> float:
    """Red-sequence galaxies >= 0.2 L* within 1 Mpc, background-subtracted.

    Where the image is too shallow to reach 0.2 L* (S/N 6 for a red galaxy), galaxies are counted
    to the luminosity it does reach and scaled by the Schechter function's ratio of numbers.
    """
    found = galaxy_detections(hdul)
    scale_deg, dy, dx = _pixel_grid(hdul[0].header, hdul[0].data.shape[1:])
    mpc_per_pix = np.radians(scale_deg) * float(angular_diameter_distance_mpc(z))
    radius_map = np.hypot(dy, dx) * mpc_per_pix
    radius = radius_map[found["row"], found["col"]]
    # faintest red-sequence luminosity (in L*) detected at S/N 6 in r+i
    lum = np.geomspace(0.05, 10, 200)
    model_flux = 10 ** (
        -0.4 * (optical.apparent_mags(optical.mstar_r(z) - 2.5 * np.log10(lum), z, True) - 22.5)
    )
    snr = (
        model_flux[:, 2] / found["flux_err"][2] + model_flux[:, 3] / found["flux_err"][3]
    ) / np.sqrt(2)
    l_cut = max(optical.LAMBDA_LMIN, float(np.interp(6.0, snr, lum)))
    limit_i = optical.apparent_mags(optical.mstar_r(z) - 2.5 * np.log10(l_cut), z, True)[3]
    a, b = (1, 2) if z < 0.35 else (2, 3)  # g-r below z = 0.35, r-i above (4000 A break)
    expected = optical.red_sequence_colours(z)[a]
    flux, err = found["flux"], found["flux_err"]
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = found["mag"][:, a] - found["mag"][:, b]
        colour_err = 1.086 * np.hypot(err[a] / flux[:, a], err[b] / flux[:, b])
    width = np.minimum(np.hypot(RED_SEQUENCE_WIDTH, 2 * colour_err), 0.5)
    red = (np.abs(colour - expected) < width) & (found["mag"][:, 3] <= limit_i)
    inner = red & (radius < RICHNESS_RADIUS_MPC)
    outer = red & (radius >= RICHNESS_BACKGROUND_MPC)
    outer_area = (radius_map >= RICHNESS_BACKGROUND_MPC).sum() * mpc_per_pix**2
    density = outer.sum() / outer_area if outer_area > 0 else 0.0
    count = inner.sum() - density * np.pi * RICHNESS_RADIUS_MPC**2
    completeness = optical.schechter_number(l_cut) / optical.schechter_number(optical.LAMBDA_LMIN)
    return float(count / completeness)


@dataclass
class ScalingRelation:
    """log10 M500 = a + b log10(O / E(z)^p), least squares of log M on the proxy."""

    ez_power: float
    intercept: float | None = None
    slope: float | None = None
    scatter_dex: float | None = None  # rms residual in log10 M on the training set

    def _x(self, observable, z) -> np.ndarray:
        observable = np.asarray(observable, dtype=float)
        return np.log10(np.clip(observable, 1e-300, None)) - self.ez_power * np.log10(
            efunc(np.asarray(z))
        )

    def fit(self, observable, z, log10_m500) -> ScalingRelation:
        x = self._x(observable, z)
        y = np.asarray(log10_m500, dtype=float)
        good = np.isfinite(x) & np.isfinite(y) & (np.asarray(observable, float) > 0)
        if good.sum() < 3:
            raise ValueError(
                f"only {int(good.sum())} training clusters have a positive proxy; "
                "need at least 3 to fit a scaling relation"
            )
        self.slope, self.intercept = np.polyfit(x[good], y[good], 1)
        self.scatter_dex = float(
            np.std(y[good] - self.predict(np.asarray(observable)[good], np.asarray(z)[good]))
        )
        return self

    def predict(self, observable, z) -> np.ndarray:
        if self.slope is None:
            raise RuntimeError("scaling relation not fitted: call fit() on training clusters first")
        return self.intercept + self.slope * self._x(observable, z)


@dataclass
class Baseline:
    """A mass proxy measured on cutouts plus its scaling relation (fit on training clusters only).

    A proxy with a ``unit`` is measured inside R500 (true R500 in training, iterated in predict).
    """

    name: str
    measure: Callable[..., u.Quantity | float]
    relation: ScalingRelation
    unit: u.UnitBase | None = None  # the proxy's unit when measured inside R500
    floor: float = (
        1.0  # proxy values below it are clipped (e.g. a negative background-subtracted count)
    )
    n_iterations: int = 6

    @property
    def uses_r500(self) -> bool:
        return self.unit is not None

    def _value(self, hdul, z, r500_mpc_value=None) -> float:
        if self.uses_r500:
            return float(self.measure(hdul, z, r500_mpc_value * u.Mpc).to_value(self.unit))
        return float(self.measure(hdul, z))

    def fit(self, cutouts: Sequence[fits.HDUList], z, log10_m500) -> Baseline:
        z, log_m = np.asarray(z, float), np.asarray(log10_m500, float)
        values = np.array(
            [
                self._value(h, zi, float(r500_mpc(mi, zi)) if self.uses_r500 else None)
                for h, zi, mi in zip(cutouts, z, log_m, strict=True)
            ]
        )
        self.relation.fit(np.maximum(values, self.floor), z, log_m)
        return self

    def predict(self, cutouts: Sequence[fits.HDUList], z) -> np.ndarray:
        """log10 M500 [Msun] of each cutout's cluster."""
        return np.array(
            [self._predict_one(h, zi) for h, zi in zip(cutouts, np.asarray(z, float), strict=True)]
        )

    def _predict_one(self, hdul, z: float) -> float:
        if not self.uses_r500:
            return float(self.relation.predict(max(self._value(hdul, z), self.floor), z))
        log_m = 14.5
        for _ in range(self.n_iterations):
            value = self._value(hdul, z, float(r500_mpc(log_m, z)))
            log_m = float(np.clip(self.relation.predict(max(value, self.floor), z), 12.5, 16.0))
        return log_m


def make_baseline(instrument: str) -> Baseline:
    """A fresh, unfitted baseline for ``instrument`` (xray, sz or optical)."""
    if instrument == "xray":
        return Baseline(
            "core-excised L_X", core_excised_lx, ScalingRelation(7 / 3), u.erg / u.s, floor=1e40
        )
    if instrument == "sz":
        return Baseline("aperture Y", aperture_y, ScalingRelation(2 / 3), u.Mpc**2, floor=1e-8)
    if instrument == "optical":
        return Baseline("richness count", richness_count, ScalingRelation(0.0), floor=1.0)
    raise ValueError(f"no baseline for instrument {instrument!r}; choose xray, sz or optical")
