"""The fast TAN paths give astropy's (wcslib's) answers, and leave every other header to it."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from survey_mass.preprocess.resample import (
    GridSpec,
    _agrees_with_astropy,
    celestial_wcs,
    grid_coordinates,
)
from survey_mass.wcs import (
    _plain_tan_header,
    built_plain,
    header_wcs,
    is_plain_tan,
    tan_pixel_map,
    tan_wcs,
)


def _fresh(wcs: WCS) -> fits.Header:
    """A header as a cutout file gives it: the WCS cards among others, through a FITS HDU."""
    header = fits.PrimaryHDU(np.zeros((8, 8), np.float32), header=wcs.to_header()).header
    header["TELESCOP"] = "SDSS"
    header["DATE-OBS"] = "2010-01-01"
    return header


def _mapping_error(a: WCS, b: WCS) -> float:
    pixels = np.random.default_rng(0).uniform(-20, 150, (2, 200))
    world_a, world_b = a.pixel_to_world_values(*pixels), b.pixel_to_world_values(*pixels)
    return float(np.max(np.abs(np.subtract(world_a, world_b))))


@pytest.mark.parametrize(
    "ra, dec, lonpole",
    [(150.0, 2.0, None), (359.99, -30.0, None), (0.0, 89.99, None), (10.0, -45.0, 170.0)],
)
def test_a_plain_tan_header_gives_astropys_wcs_without_its_full_parse(ra, dec, lonpole):
    wcs = tan_wcs(ra, dec, 0.0011, 128)
    if lonpole is not None:
        wcs.wcs.lonpole = lonpole
    header = _fresh(wcs)
    fast, full = header_wcs(header), WCS(header).celestial
    assert _plain_tan_header(header) is not None  # the fast path was taken
    assert _mapping_error(fast, full) < 1e-12
    for name in ("crval", "crpix", "cdelt", "lonpole", "latpole"):
        np.testing.assert_array_equal(getattr(fast.wcs, name), getattr(full.wcs, name))
    assert fast.wcs.radesys == full.wcs.radesys == "ICRS"


def _rotated(header):
    header["PC1_2"] = 0.3
    header["PC2_1"] = -0.3


def _sip(header):
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    header["A_ORDER"] = header["B_ORDER"] = 2
    header["A_2_0"] = header["B_0_2"] = 1e-6


def _arcsec(header):
    header["CUNIT1"] = header["CUNIT2"] = "arcsec"
    header["CDELT1"], header["CDELT2"] = -3.96, 3.96


def _tpv(header):
    header["PV2_1"] = 1.0


def _cd_only(header):
    scale = header["CDELT2"]
    del header["CDELT1"], header["CDELT2"]
    header["CD1_1"], header["CD2_2"], header["CD1_2"], header["CD2_1"] = -scale, scale, 1e-5, 2e-5


def _crota(header):
    header["CROTA2"] = 30.0


def _sip_cards_under_plain_ctypes(header):  # astropy applies them all the same
    header["A_ORDER"] = header["B_ORDER"] = 2
    header["A_2_0"] = header["B_0_2"] = 1e-4


def _string_crval(header):  # not a number: astropy reads it as the default
    header["CRVAL1"] = "150.0"


@pytest.mark.parametrize(
    "edit",
    [_rotated, _sip, _arcsec, _tpv, _cd_only, _crota, _sip_cards_under_plain_ctypes, _string_crval],
)
def test_any_other_wcs_goes_to_astropys_full_parse(edit):
    header = _fresh(tan_wcs(150.0, 2.0, 0.0011, 128))
    edit(header)
    assert _plain_tan_header(header) is None
    assert _mapping_error(header_wcs(header), WCS(header).celestial) == 0.0


@pytest.mark.parametrize("edit", [_rotated, _cd_only, _crota, _sip_cards_under_plain_ctypes])
def test_the_model_grid_lands_where_astropy_puts_it_on_any_tan_cutout(edit):
    header = _fresh(tan_wcs(150.0, 2.0, 0.0011, 128))
    edit(header)
    in_wcs = celestial_wcs(header)
    grid = GridSpec(npix=32, width=2.0 * u.Mpc)
    out_wcs = grid.wcs(150.01, 2.005, 0.3)
    coords, _ = grid_coordinates(in_wcs, out_wcs, grid.npix)
    yy, xx = np.mgrid[0:32, 0:32]
    world = out_wcs.pixel_to_world_values(xx, yy)
    col, row = in_wcs.world_to_pixel_values(*world)
    np.testing.assert_allclose(coords, np.stack([row, col]), rtol=0, atol=1e-8)


def test_only_the_wcss_built_from_six_numbers_skip_the_check_against_astropy():
    header = _fresh(tan_wcs(150.0, 2.0, 0.0011, 128))
    assert built_plain(tan_wcs(150.0, 2.0, 0.0011, 128)) and built_plain(header_wcs(header))
    assert not built_plain(WCS(header).celestial)  # parsed by astropy: spot-checked
    _rotated(header)
    assert not built_plain(header_wcs(header))


def test_a_tan_map_that_disagrees_with_astropy_is_not_used():
    out_wcs, in_wcs = tan_wcs(150.0, 2.0, 0.001, 32), tan_wcs(150.01, 2.0, 0.0011, 40)
    fast = tan_pixel_map([out_wcs], [in_wcs], 32, np)[0]
    assert _agrees_with_astropy(fast, out_wcs, in_wcs)
    fast[0, 31, 0] += 1e-3  # a corner off, as a distortion wcslib applies inside would put it
    assert not _agrees_with_astropy(fast, out_wcs, in_wcs)


def test_a_singular_plain_header_is_an_error_as_in_astropy():
    header = _fresh(tan_wcs(150.0, 2.0, 0.0011, 128))
    header["CDELT1"] = 0.0
    with pytest.raises(Exception, match="[Ss]ingular"):
        header_wcs(header)


def test_the_tan_to_tan_pixel_map_is_astropys_to_1e9_pixel_across_the_sky():
    rng = np.random.default_rng(1)
    outs, ins = [], []
    for ra, dec in [(0.0, 89.99), (359.99, -30.0), (180.0, -89.5)] + [
        (rng.uniform(0, 360), rng.uniform(-80, 80)) for _ in range(9)
    ]:
        outs.append(tan_wcs(ra, dec, rng.uniform(1e-4, 2e-2), 32))
        inner = tan_wcs(
            ra + rng.normal(0, 0.05), np.clip(dec + rng.normal(0, 0.05), -89.9, 89.9), 0.003, 40
        )
        inner.wcs.crpix = rng.uniform(5, 35, 2)
        inner.wcs.pc = [[1.0, rng.uniform(-0.3, 0.3)], [rng.uniform(-0.3, 0.3), 1.0]]  # rotated
        inner.wcs.lonpole = rng.choice([180.0, 175.0])
        ins.append(inner)
    got = tan_pixel_map(outs, ins, 32, np)
    yy, xx = np.mgrid[0:32, 0:32]
    for n, (out_wcs, in_wcs) in enumerate(zip(outs, ins, strict=True)):
        col, row = in_wcs.world_to_pixel_values(*out_wcs.pixel_to_world_values(xx, yy))
        np.testing.assert_allclose(got[n], np.stack([row, col]), rtol=0, atol=1e-9)


def test_grid_pixels_on_the_inputs_far_side_are_nan_as_in_astropy():
    wide = tan_wcs(0.0, 0.0, 10.0, 32)  # 320 degrees across: it reaches 90 deg from its centre
    narrow = tan_wcs(100.0, 0.0, 0.01, 16)  # its far side starts 90 deg from (100, 0)
    rows = tan_pixel_map([wide], [narrow], 32, np)[0, 0]
    yy, xx = np.mgrid[0:32, 0:32]
    _, astropy_rows = narrow.world_to_pixel_values(*wide.pixel_to_world_values(xx, yy))
    assert np.isnan(rows).any() and not np.isnan(rows).all()
    np.testing.assert_array_equal(np.isnan(rows), np.isnan(astropy_rows))


def test_only_an_undistorted_radec_tan_counts_as_plain():
    assert is_plain_tan(tan_wcs(150.0, 2.0, 0.001, 16))
    header = _fresh(tan_wcs(150.0, 2.0, 0.001, 16))
    _sip(header)
    assert not is_plain_tan(WCS(header).celestial)
    galactic = tan_wcs(150.0, 2.0, 0.001, 16)
    galactic.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    assert not is_plain_tan(galactic)
