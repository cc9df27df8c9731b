"""The one TAN grid every stage agrees on: square, centred on the target, RA increasing left."""

from __future__ import annotations

from astropy.wcs import WCS


def tan_wcs(ra: float, dec: float, scale_deg: float, npix: int) -> WCS:
    """ICRS TAN WCS of an ``npix`` square grid of ``scale_deg`` pixels centred on (ra, dec)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(npix + 1) / 2, (npix + 1) / 2]
    wcs.wcs.cdelt = [-scale_deg, scale_deg]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    return wcs
