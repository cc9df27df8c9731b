"""Resampling onto the model grid: bilinear as scipy's, and skipped for a cutout already on it."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import survey_mass.preprocess.batch as batch
import survey_mass.preprocess.resample as resample
from survey_mass.preprocess.resample import resample_batch
from survey_mass.preprocess.sz import GRID, preprocess_sz
from survey_mass.sources.base import Cutout, Target
from survey_mass.wcs import tan_wcs

TARGET = Target("c1", 150.0, 2.0, 0.3)


def _cutout(shift_pixels: float = 0.0) -> Cutout:
    scale = GRID.scale.to_value("deg")
    wcs = tan_wcs(TARGET.ra + shift_pixels * scale, TARGET.dec, scale, GRID.npix)
    yy, xx = np.mgrid[: GRID.npix, : GRID.npix]
    y = 1e-5 * np.exp(-((yy - 47.5) ** 2 + (xx - 40.0) ** 2) / 50.0) + 1e-7 * xx
    return Cutout(TARGET, "sz", fits.HDUList([fits.PrimaryHDU(y, header=wcs.to_header())]), {})


def test_a_cutout_on_the_model_grid_is_taken_as_it_is(monkeypatch):
    on_grid, shifted = _cutout(), _cutout(0.5)
    fast = preprocess_sz([on_grid, shifted], np).inputs
    # the model grid's own pixels, unresampled (the FITS header round trip kept the grid)
    np.testing.assert_array_equal(fast[0, ..., 0], on_grid.hdul[0].data.astype(np.float32))
    assert not np.allclose(fast[1], fast[0])  # half a pixel off: resampled
    monkeypatch.setattr(batch, "on_model_grid", lambda *args: False)
    slow = preprocess_sz([on_grid, shifted], np).inputs
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("step", [1, 4])  # the CPU's one image per step; a GPU's whole batch
def test_resampling_is_scipys_bilinear_with_the_edge_extended_and_nan_outside(step, monkeypatch):
    from scipy.ndimage import map_coordinates

    monkeypatch.setattr(resample, "CPU_CHUNK", step)
    rng = np.random.default_rng(3)
    images = [rng.normal(size=(3, 20, 24)) for _ in range(4)]
    yy, xx = np.mgrid[0:16, 0:16].astype(float)
    coords = [np.stack([1.3 * yy - 1.0 + i, 1.1 * xx + 0.6 * yy - 0.8]) for i in range(4)]
    out = resample_batch(images, coords, [1.0, 2.0, 0.5, 1.0], np, conserve_flux=True)
    assert out.shape == (4, 3, 16, 16)
    for i, (image, (rows, cols)) in enumerate(zip(images, coords, strict=True)):
        outside = (rows < -0.5) | (rows > 19.5) | (cols < -0.5) | (cols > 23.5)
        assert outside.any() and not outside.all()
        ratio = [1.0, 2.0, 0.5, 1.0][i]
        for band in range(3):
            expected = ratio * map_coordinates(image[band], [rows, cols], order=1, mode="nearest")
            np.testing.assert_allclose(out[i, band][~outside], expected[~outside], atol=1e-12)
            assert np.isnan(out[i, band][outside]).all()


def test_grid_pixels_the_projection_cannot_reach_are_outside_not_an_error():
    rows = np.full((16, 16), 3.0)
    rows[:4] = np.nan  # astropy's answer on the far side of the sky
    coords = [np.stack([rows, np.full((16, 16), 2.0)])]
    out = resample_batch([np.ones((1, 8, 8))], coords, [1.0], np, conserve_flux=False)
    assert np.isnan(out[0, 0, :4]).all() and np.all(out[0, 0, 4:] == 1.0)
