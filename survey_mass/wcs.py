"""The one TAN grid every stage agrees on (square, centred on the target, RA increasing left), and
fast exact paths for plain TAN headers, which every mock cutout and most cutout services write.

astropy parses a FITS header's WCS in ~1.5 ms (it renders and verifies every card) and maps a
128^2 grid between two WCSs in ~4 ms; a batch of cutouts paid both per cutout, more than the CNN.
A plain TAN WCS (no PC/CD rotation cards, no PV, SIP or distortion tables) is six numbers, and the
map from one TAN grid to another is a linear step, a 3 x 3 rotation and a projection: the paths
here compute it (in ``xp``, for any number of grid pairs) and agree with astropy (wcslib) to
~1e-10 pixel. Anything else goes to astropy.
"""

from __future__ import annotations

import re
import weakref

import numpy as np
from astropy.wcs import WCS

PLAIN_CTYPES = ("RA---TAN", "DEC--TAN")
#: the WCSs built here from six numbers: plain by construction (``built_plain``)
_BUILT_PLAIN: weakref.WeakSet = weakref.WeakSet()
#: the numeric cards a plain TAN header's WCS is built from (read once, numbers only)
NUMBER_CARDS = (
    "CRVAL1",
    "CRVAL2",
    "CRPIX1",
    "CRPIX2",
    "CDELT1",
    "CDELT2",
    "LONPOLE",
    "LATPOLE",
    "EQUINOX",
)
#: header cards that would change a TAN header's mapping beyond its six numbers: such a header
#: goes to astropy's full parse
_NOT_PLAIN = re.compile(
    r"^(PC\d|CD\d|CROTA|PV\d|PS\d|A_|B_|AP_|BP_|CPDIS|CQDIS|DP\d|DQ\d|D2IM|EPOCH$|RADECSYS$)"
)


def tan_wcs(ra: float, dec: float, scale_deg: float, npix: int) -> WCS:
    """ICRS TAN WCS of an ``npix`` square grid of ``scale_deg`` pixels centred on (ra, dec)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = list(PLAIN_CTYPES)
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(npix + 1) / 2, (npix + 1) / 2]
    wcs.wcs.cdelt = [-scale_deg, scale_deg]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    _BUILT_PLAIN.add(wcs)
    return wcs


def _plain_tan_header(header) -> WCS | None:
    """The WCS of a plain TAN header built from its cards, or None where it is not plain."""
    if tuple(header.get(f"CTYPE{i}") for i in (1, 2)) != PLAIN_CTYPES:
        return None
    if any(_NOT_PLAIN.match(key) for key in header.keys()):
        return None
    if any(header.get(f"CUNIT{i}", "deg") != "deg" for i in (1, 2)):
        return None
    if header.get("WCSAXES", 2) != 2:
        return None
    cards = {key: header.get(key) for key in NUMBER_CARDS}
    if any(
        isinstance(v, bool) or not isinstance(v, (int, float, type(None))) for v in cards.values()
    ):
        return None  # astropy ignores (or rejects) a card that is not a number: it says which
    number = {key: float(v) for key, v in cards.items() if v is not None}
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = list(PLAIN_CTYPES)
    wcs.wcs.crval = [number.get("CRVAL1", 0.0), number.get("CRVAL2", 0.0)]
    wcs.wcs.crpix = [number.get("CRPIX1", 0.0), number.get("CRPIX2", 0.0)]
    wcs.wcs.cdelt = [number.get("CDELT1", 1.0), number.get("CDELT2", 1.0)]
    wcs.wcs.cunit = ["deg", "deg"]
    if "LONPOLE" in number:
        wcs.wcs.lonpole = number["LONPOLE"]
    if "LATPOLE" in number:
        wcs.wcs.latpole = number["LATPOLE"]
    if "RADESYS" in header:
        wcs.wcs.radesys = str(header["RADESYS"])
    if "EQUINOX" in number:
        wcs.wcs.equinox = number["EQUINOX"]
    wcs.wcs.set()  # as astropy's parse does: a singular or invalid WCS raises here
    if isinstance(header.get("NAXIS1"), int) and isinstance(header.get("NAXIS2"), int):
        wcs.pixel_shape = (header["NAXIS1"], header["NAXIS2"])
    _BUILT_PLAIN.add(wcs)
    return wcs


def header_wcs(header) -> WCS:
    """The celestial WCS of an image header: built from the cards of a plain TAN header, else
    astropy's full parse (``WCS(header).celestial``, which raises on a header it cannot read)."""
    plain = _plain_tan_header(header)
    return plain if plain is not None else WCS(header).celestial


def built_plain(wcs: WCS) -> bool:
    """Whether ``wcs`` was built here (``tan_wcs``, a plain header's cards): nothing but the TAN
    projection maps it, so ``tan_pixel_map`` needs no check against astropy."""
    return wcs in _BUILT_PLAIN


def is_plain_tan(wcs: WCS) -> bool:
    """Whether ``wcs`` is a 2-axis RA/Dec TAN with no PV terms or distortions (``tan_pixel_map``
    computes its transforms exactly)."""
    return (
        wcs.naxis == 2
        and tuple(wcs.wcs.ctype) == PLAIN_CTYPES
        and [str(unit) for unit in wcs.wcs.cunit] == ["deg", "deg"]
        and not wcs.has_distortion
        and not wcs.wcs.get_pv()
    )


def _native_to_celestial(wcs: WCS) -> np.ndarray:
    """3 x 3 rotation taking a TAN WCS's native unit vectors to ICRS-frame unit vectors.

    Its columns are the celestial directions of the native axes: native x (phi = 0, theta = 0),
    native y (phi = 90 deg, theta = 0) and the native pole (the reference point, CRVAL), from the
    spherical rotation of FITS WCS Paper II, eq. 2, with phi_p = LONPOLE."""
    wcs.wcs.set()
    ra_p, dec_p = np.radians(wcs.wcs.crval)
    phi_p = np.radians(wcs.wcs.lonpole)
    columns = []
    for phi in (0.0, np.pi / 2):
        dphi = phi - phi_p
        ra = ra_p + np.arctan2(-np.sin(dphi), -np.sin(dec_p) * np.cos(dphi))
        dec = np.arcsin(np.cos(dec_p) * np.cos(dphi))
        columns.append([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    columns.append([np.cos(dec_p) * np.cos(ra_p), np.cos(dec_p) * np.sin(ra_p), np.sin(dec_p)])
    return np.array(columns).T


def _linear(wcs: WCS) -> tuple[np.ndarray, np.ndarray]:
    """(2 x 2 pixel-to-intermediate matrix [deg/pixel], 0-based reference pixel)."""
    return np.asarray(wcs.pixel_scale_matrix), np.asarray(wcs.wcs.crpix) - 1.0


def tan_pixel_map(out_wcss, in_wcss, npix: int, xp):
    """(N, 2, npix, npix) (row, col) input pixel of every pixel of each output grid, for pairs of
    plain TAN WCSs (``is_plain_tan``), computed in ``xp`` for the whole batch; NaN where the grid
    pixel lies on the input projection's far side (as astropy's ``world_to_pixel_values``)."""
    deg = 180.0 / np.pi
    # per pair (columns of (N, 1, 1) arrays): output native -> celestial -> input native
    pairs = list(zip(out_wcss, in_wcss, strict=True))
    turn = np.stack([_native_to_celestial(i).T @ _native_to_celestial(o) for o, i in pairs])
    out_m, out_ref = (np.stack([_linear(o)[k] for o, _ in pairs]) for k in (0, 1))
    in_m, in_ref = (np.stack([_linear(i)[k] for _, i in pairs]) for k in (0, 1))
    in_inv = np.linalg.inv(in_m)

    def per_pair(values):
        return xp.asarray(values)[:, None, None]

    yy, xx = xp.mgrid[0:npix, 0:npix].astype(xp.float64)
    dx, dy = xx[None] - per_pair(out_ref[:, 0]), yy[None] - per_pair(out_ref[:, 1])
    x = per_pair(out_m[:, 0, 0]) * dx + per_pair(out_m[:, 0, 1]) * dy  # intermediate [deg]
    y = per_pair(out_m[:, 1, 0]) * dx + per_pair(out_m[:, 1, 1]) * dy
    native = (-y, x, deg)  # TAN: the direction of intermediate (x, y), not normalised

    def turned(row):
        return sum(per_pair(turn[:, row, k]) * native[k] for k in range(3))

    u, v, w = turned(0), turned(1), turned(2)
    front = w > 0
    w = xp.where(front, w, 1.0)
    x_in, y_in = deg * v / w, -deg * u / w
    col = per_pair(in_inv[:, 0, 0]) * x_in + per_pair(in_inv[:, 0, 1]) * y_in
    row = per_pair(in_inv[:, 1, 0]) * x_in + per_pair(in_inv[:, 1, 1]) * y_in
    col, row = col + per_pair(in_ref[:, 0]), row + per_pair(in_ref[:, 1])
    return xp.where(front[:, None], xp.stack([row, col], axis=1), xp.nan)
