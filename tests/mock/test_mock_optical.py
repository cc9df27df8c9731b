"""Physics of the mock SDSS cubes: binning, red-sequence colours, richness, fluxes, FITS/WCS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.wcs import WCS

from survey_mass.constants import OPTICAL_APERTURE, OPTICAL_GRID, SDSS_PIXEL
from survey_mass.mock import optical
from survey_mass.mock.universe import (
    LAMBDA_SLOPE,
    UNIVERSE_ORDER,
    UniverseSpec,
    clusters_in,
)
from survey_mass.physics.cosmology import angular_diameter_distance_mpc
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import ConeFootprint
from survey_mass.validate.baselines import galaxy_detections

SEED = 7


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    spec = UniverseSpec(seed=SEED, density_scale=30)
    footprint = ConeFootprint(ra=60.0, dec=-20.0, radius_deg=1.0)
    frames = [
        clusters_in(spec, footprint, UNIVERSE_ORDER, p)
        for p in footprint_pixels(footprint, UNIVERSE_ORDER)
    ]
    return pd.concat(frames, ignore_index=True).head(400)


@pytest.mark.parametrize("z", [0.03, 0.1, 0.5, 1.0])
def test_binning_covers_the_physical_aperture(z):
    b = optical.binning(z)
    width_mpc = (OPTICAL_GRID * b * SDSS_PIXEL).to_value(u.rad) * angular_diameter_distance_mpc(z)
    assert (
        OPTICAL_APERTURE.to_value(u.Mpc)
        <= width_mpc
        < OPTICAL_APERTURE.to_value(u.Mpc) * (1 + 1 / b) + 1e-9
    )


def test_red_sequence_colours_follow_redshift_as_observed():
    """g-r and r-i of the red sequence against redMaPPer's (Rykoff et al. 2014, fig. 3)."""
    colours = optical.red_sequence_colours(np.array([0.1, 0.3, 0.5, 0.6]))
    g_r, r_i = colours[:, 1], colours[:, 2]
    assert g_r[0] == pytest.approx(1.0, abs=0.12)
    assert g_r[1] == pytest.approx(1.55, abs=0.15)
    assert r_i[2] == pytest.approx(0.95, abs=0.15)
    assert r_i[3] == pytest.approx(1.15, abs=0.15)
    z = np.linspace(0.05, 0.35, 7)
    assert np.all(np.diff(optical.red_sequence_colours(z)[:, 1]) > 0)  # 4000 A break: g -> r
    z = np.linspace(0.4, 0.7, 7)
    assert np.all(np.diff(optical.red_sequence_colours(z)[:, 2]) > 0)  # then r -> i


def test_member_colours_measured_in_images_match_the_red_sequence(sample):
    """Matched-filter photometry of bright members recovers the model colours at their redshift."""
    for z_target, (a, b) in [(0.15, (1, 2)), (0.3, (1, 2)), (0.5, (2, 3))]:
        state = sample.iloc[np.argmin(np.abs(sample.z - z_target))].copy()
        state["richness_true"] = 120.0  # a rich cluster, for enough bright members
        hdul = optical.optical_hdul(state, SEED)
        found = galaxy_detections(hdul)
        gal = optical.members(state, SEED)
        truth = optical.apparent_mags(gal.abs_mag_r, state.z, gal.red)
        pix_mpc = np.radians(abs(WCS(hdul[0].header).wcs.cdelt[0])) * angular_diameter_distance_mpc(
            state.z
        )
        col = (OPTICAL_GRID - 1) / 2 + gal.x_mpc.to_numpy() / pix_mpc
        row = (OPTICAL_GRID - 1) / 2 + gal.y_mpc.to_numpy() / pix_mpc
        dist = np.hypot(col[:, None] - found["col"], row[:, None] - found["row"])
        bright = gal.red.to_numpy() & (truth[:, 3] < np.percentile(truth[gal.red, 3], 30))
        matched = bright & (dist.min(axis=1) < 0.8)
        measured = found["mag"][dist.argmin(axis=1)[matched]]
        colour = np.nanmedian(measured[:, a] - measured[:, b])
        assert matched.sum() >= 10
        assert colour == pytest.approx(optical.red_sequence_colours(state.z)[a], abs=0.12)


def test_lambda_m_relation_of_members(sample):
    """Members >= 0.2 L* in R_lambda ~ Poisson(lambda_true): slope 0.83, scatter ~0.25 (+Poisson)."""
    counts = np.array(
        [
            optical.lambda_members(s, r, SEED)
            for s, r in zip(sample.stream, sample.richness_true, strict=True)
        ]
    )
    rich = counts >= 10
    x = np.log(10 ** sample.log10_m500.to_numpy()[rich])
    y = np.log(counts[rich])
    slope, intercept = np.polyfit(x, y, 1)
    assert slope == pytest.approx(LAMBDA_SLOPE, abs=0.12)
    assert 0.22 < np.std(y - slope * x - intercept) < 0.36
    assert counts.mean() == pytest.approx(sample.richness_true.mean(), rel=0.05)


def test_image_flux_is_the_sum_of_its_galaxies(sample):
    """Noiseless, field-free cube: total flux per band = sum of the members' catalogue fluxes."""
    state = sample.iloc[np.argmin(np.abs(sample.z - 0.4))]
    cube, _ = optical.image_cube(state, SEED, noise=False, field=False)
    gal = optical.members(state, SEED)
    flux = 10 ** (-0.4 * (optical.apparent_mags(gal.abs_mag_r, state.z, gal.red) - 22.5))
    np.testing.assert_allclose(cube.sum(axis=(1, 2)), flux.sum(axis=0), rtol=0.02)


def test_bcg_brightens_with_mass(sample):
    """The BCG's luminosity carries mass information beyond richness (L ~ M^0.4)."""
    bcg = np.array(
        [optical.members(s, SEED).abs_mag_r.iloc[0] for _, s in sample.head(200).iterrows()]
    )
    slope = np.polyfit(
        sample.log10_m500.head(200), bcg + optical.MSTAR_EVOLUTION * sample.z.head(200), 1
    )[0]
    assert slope == pytest.approx(-2.5 * optical.BCG_SLOPE, abs=0.3)


def test_fits_cube_header_and_wcs(sample):
    state = sample.iloc[0]
    hdul = optical.optical_hdul(state, SEED)
    header = hdul[0].header
    assert hdul[0].data.shape == (5, OPTICAL_GRID, OPTICAL_GRID)
    assert header["BANDS"] == "ugriz" and header["BUNIT"] == "nanomaggy"
    wcs = WCS(header).celestial
    scale = abs(wcs.wcs.cdelt[0]) * 3600
    assert scale == pytest.approx(header["BINNING"] * SDSS_PIXEL.to_value(u.arcsec), rel=1e-6)
    ra, dec = wcs.wcs_pix2world([[(OPTICAL_GRID - 1) / 2] * 2], 0)[0]
    assert (ra, dec) == pytest.approx((state.ra, state.dec), abs=1e-9)
    noise = np.array([header[f"SKYSIG_{b}"] for b in "UGRIZ"])
    sky = (
        np.median(
            np.abs(hdul[0].data - np.median(hdul[0].data, axis=(1, 2), keepdims=True)), axis=(1, 2)
        )
        * 1.4826
    )
    np.testing.assert_allclose(sky, noise, rtol=0.15)  # sky-dominated pixels
    assert np.array_equal(hdul[0].data, optical.optical_hdul(state, SEED)[0].data)


def test_low_redshift_fields_render(sample):
    """z = 0.03: ~10^4 field objects over 1.9 deg^2, some at high z; finite, noise-dominated sky."""
    for _, state in sample.head(8).iterrows():
        state = state.copy()
        state["z"] = 0.03
        cube, b = optical.image_cube(state, SEED)
        assert b == optical.binning(0.03) and np.isfinite(cube).all()
