"""Physics of the mock Chandra images: counts follow exposure and flux, L_X-M, FITS/WCS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.wcs import WCS

from survey_mass.constants import XRAY_APERTURE, XRAY_GRID
from survey_mass.mock import xray
from survey_mass.mock.universe import (
    LX_EZ,
    LX_SLOPE,
    UNIVERSE_ORDER,
    UniverseSpec,
    clusters_in,
    efunc,
    r500_mpc,
)
from survey_mass.physics.cosmology import luminosity_distance_mpc
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import ConeFootprint
from survey_mass.validate.baselines import core_excised_lx


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    spec = UniverseSpec(seed=7, density_scale=30)
    footprint = ConeFootprint(ra=60.0, dec=-20.0, radius_deg=1.0)
    frames = [
        clusters_in(spec, footprint, UNIVERSE_ORDER, p)
        for p in footprint_pixels(footprint, UNIVERSE_ORDER)
    ]
    return pd.concat(frames, ignore_index=True).head(300)


def _cluster_counts(state: pd.Series, npix: int = 64) -> float:
    counts, exposure = xray.expected_counts(state, npix)
    pixel_arcmin = (
        XRAY_APERTURE
        / npix
        / (luminosity_distance_mpc(state.z) / (1 + state.z) ** 2 * u.Mpc)
        * u.rad
    ).to_value(u.arcmin)
    return float(counts.sum() - xray.ACIS_BACKGROUND_RATE * exposure * pixel_arcmin**2 * npix**2)


def test_counts_scale_with_exposure(sample):
    state = sample.iloc[0].copy()
    base = xray.expected_counts(state, 64)[0]
    state["xray_exposure_ks"] *= 2.5
    np.testing.assert_allclose(xray.expected_counts(state, 64)[0], 2.5 * base, rtol=1e-12)
    # a Poisson realisation's total is within 4 sigma of the expectation
    image, _ = xray.photon_image(state, 3, 64)
    expected = xray.expected_counts(state, 64)[0].sum()
    assert abs(image.sum() - expected) < 4 * np.sqrt(expected) + 200  # + field AGN


def test_counts_follow_the_inverse_square_of_luminosity_distance(sample):
    state = sample.iloc[1].copy()
    state["cool_core"] = state["merger"] = False
    state["z"], state["r500_mpc"] = 0.1, r500_mpc(state.log10_m500, 0.1)
    near = _cluster_counts(state)
    state["z"], state["r500_mpc"] = 0.4, r500_mpc(state.log10_m500, 0.4)
    far = _cluster_counts(state)
    ratio = (luminosity_distance_mpc(0.4) / luminosity_distance_mpc(0.1)) ** 2
    assert near / far == pytest.approx(ratio, rel=0.01)  # same L, same physical aperture


def test_core_excised_lx_m_slope_and_scatter_recovered(sample):
    """L in 0.15-1 R500 measured on noiseless images: slope 1.6 and ln-scatter ~0.2 as input."""
    lum = []
    for _, state in sample.iterrows():
        counts, exposure = xray.expected_counts(state)
        hdul = xray.xray_hdul(state, 1)
        hdul[0].data = counts.astype(np.float32)
        lum.append(core_excised_lx(hdul, state.z, state.r500_mpc * u.Mpc).to_value(u.erg / u.s))
    x = np.log(10 ** sample.log10_m500.to_numpy())
    y = np.log(np.array(lum) / efunc(sample.z.to_numpy()) ** LX_EZ)
    slope, intercept = np.polyfit(x, y, 1)
    assert slope == pytest.approx(LX_SLOPE, abs=0.08)
    assert 0.17 < np.std(y - slope * x - intercept) < 0.28  # 0.20 input + merging sub-clumps


def test_fits_cutout_has_a_physical_wcs(sample):
    state = sample.iloc[2]
    hdul = xray.xray_hdul(state, 5)
    wcs = WCS(hdul[0].header)
    width_mpc = (abs(wcs.wcs.cdelt[0]) * XRAY_GRID * u.deg).to_value(u.rad) * (
        luminosity_distance_mpc(state.z) / (1 + state.z) ** 2
    )
    assert width_mpc == pytest.approx(XRAY_APERTURE.to_value(u.Mpc), rel=1e-4)
    assert hdul[0].header["EXPOSURE"] == pytest.approx(state.xray_exposure_ks * 1e3)
    assert np.array_equal(hdul[0].data, xray.xray_hdul(state, 5)[0].data)
