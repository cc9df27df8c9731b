"""A cutout already on the model grid skips resampling and gives what resampling would."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

import survey_mass.preprocess.batch as batch
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
