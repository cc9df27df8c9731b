"""Physics of the mock Planck y-maps: GNFW integrals, Y-M, beam, noise power, FITS/WCS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from survey_mass.constants import PLANCK_BEAM_FWHM, PLANCK_PIXEL, SZ_GRID
from survey_mass.mock import sz
from survey_mass.mock.universe import (
    UNIVERSE_ORDER,
    Y_SLOPE,
    UniverseSpec,
    clusters_in,
    efunc,
)
from survey_mass.physics.cosmology import angular_diameter_distance_mpc
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import ConeFootprint


def _sample(n: int, seed: int = 7) -> pd.DataFrame:
    spec = UniverseSpec(seed=seed, density_scale=30)
    footprint = ConeFootprint(ra=60.0, dec=-20.0, radius_deg=1.0)
    frames = [
        clusters_in(spec, footprint, UNIVERSE_ORDER, p)
        for p in footprint_pixels(footprint, UNIVERSE_ORDER)
    ]
    return pd.concat(frames, ignore_index=True).head(n)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return _sample(300)


def _fwhm_arcmin(image: np.ndarray) -> float:
    """FWHM of a centred Gaussian blob from its second moments."""
    rows, cols = np.indices(image.shape)
    weight = np.clip(image, 0, None)
    total = weight.sum()
    cy, cx = (rows * weight).sum() / total, (cols * weight).sum() / total
    var = (((rows - cy) ** 2 + (cols - cx) ** 2) * weight).sum() / total / 2
    return float(np.sqrt(8 * np.log(2) * var) * PLANCK_PIXEL.to_value(u.arcmin))


def test_gnfw_integrals_match_arnaud_2010():
    x, _, y_cyl = sz.gnfw_projected("universal")
    # Arnaud et al. 2010: Y_cyl(R500) = 1.203 Y_sph(R500); Y(5 R500) ~ 1.8 Y_sph(R500)
    assert np.interp(0.0, np.log(x), y_cyl) == pytest.approx(1.203, rel=0.005)
    assert sz.y5r500_over_ysph("universal") == pytest.approx(1.796, rel=0.01)


def test_map_carries_the_hidden_y(sample):
    pixel_sr = PLANCK_PIXEL.to_value(u.rad) ** 2
    resolved = sample[sample.z > 0.1].head(60)
    measured = np.array([sz.signal_map(s).sum() * pixel_sr for _, s in resolved.iterrows()])
    np.testing.assert_allclose(measured, sz.y5r500_sr(resolved), rtol=0.01)


def test_y_m_slope_and_scatter_recovered(sample):
    """ln(D_A^2 Y5R500 E^-2/3) vs ln M of relaxed clusters: Arnaud slope 1.787, scatter 0.12 in."""
    relaxed = sample[~sample.merger.to_numpy(bool)]
    pixel_sr = PLANCK_PIXEL.to_value(u.rad) ** 2
    y5 = np.array([sz.signal_map(s).sum() * pixel_sr for _, s in relaxed.iterrows()])
    x = np.log(10 ** relaxed.log10_m500.to_numpy())
    y = np.log(
        y5
        * angular_diameter_distance_mpc(relaxed.z.to_numpy()) ** 2
        / efunc(relaxed.z.to_numpy()) ** (2 / 3)
    )
    slope, intercept = np.polyfit(x, y, 1)
    scatter = np.std(y - (slope * x + intercept))
    assert slope == pytest.approx(Y_SLOPE, abs=0.08)
    assert 0.09 < scatter < 0.17  # 0.12 intrinsic + cool-core vs universal profile shapes


def test_beam_fwhm_measured_from_a_point_source():
    point = np.zeros((128, 128))
    point[64, 64] = 1.0
    assert _fwhm_arcmin(sz.beam_convolve(point)) == pytest.approx(
        PLANCK_BEAM_FWHM.to_value(u.arcmin), rel=0.03
    )


def test_unresolved_cluster_has_the_beam_size(sample):
    compact = sample.sort_values("z").iloc[-1].copy()  # highest z: theta500 ~ 1'
    compact["merger"] = False
    compact["miscentre_mpc"] = 0.0
    image = sz.y_map(compact, 1, noise=False)
    assert _fwhm_arcmin(image) == pytest.approx(PLANCK_BEAM_FWHM.to_value(u.arcmin), rel=0.1)


def test_noise_has_a_red_power_spectrum_and_planck_rms(shared_data):
    real = fits.getdata(shared_data / "deepplanck" / "PSZ2G359.07-32.12.fits").astype(float)
    r = np.hypot(*(np.mgrid[:SZ_GRID, :SZ_GRID] - (SZ_GRID - 1) / 2))
    real_rms = real[r > 30].std()  # away from the cluster
    rng = np.random.default_rng(0)
    maps = [
        sz.noise_map(rng, SZ_GRID + 2 * sz.PAD)[sz.PAD : -sz.PAD, sz.PAD : -sz.PAD]
        for _ in range(30)
    ]
    mock_rms = np.mean([m[r > 30].std() for m in maps])
    assert mock_rms == pytest.approx(real_rms, rel=0.25)
    ell = sz._ell_grid(128)
    power = np.mean([np.abs(np.fft.rfft2(sz.noise_map(rng, 128))) ** 2 for _ in range(10)], axis=0)
    low = power[(ell > 250) & (ell < 400)].mean()
    high = power[(ell > 1500) & (ell < 2000)].mean()
    assert low / high > 10  # red + beam-limited, not white


def test_fits_cutout_has_planck_wcs_and_is_reproducible(sample):
    state = sample.iloc[0]
    hdul = sz.sz_hdul(state, 42)
    header = hdul[0].header
    assert hdul[0].data.shape == (SZ_GRID, SZ_GRID)
    assert header["BUNIT"] == "Compton-y"
    assert header["BEAMFWHM"] == pytest.approx(PLANCK_BEAM_FWHM.to_value(u.arcmin))
    wcs = WCS(header)
    assert abs(wcs.wcs.cdelt[0]) * 60 == pytest.approx(PLANCK_PIXEL.to_value(u.arcmin))
    ra, dec = wcs.wcs_pix2world([[(SZ_GRID - 1) / 2] * 2], 0)[0]
    assert (ra, dec) == pytest.approx((state.ra, state.dec), abs=1e-9)
    assert np.array_equal(hdul[0].data, sz.sz_hdul(state, 42)[0].data)
    assert not np.array_equal(hdul[0].data, sz.sz_hdul(state, 43)[0].data)
