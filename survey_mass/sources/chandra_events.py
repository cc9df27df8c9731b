"""Chandra level-2 event lists, read and binned into the cutout's photon image.

The events of 0.5-7 keV are binned onto the cutout's TAN grid (see
:func:`survey_mass.sources.archive.cutout_grid`). The sky (x, y) columns carry their own WCS
(TCTYP/TCRVL/TCRPX/TCDLT); EXPOSURE comes from the EVENTS header.

Pixels in arcminute cells with no event at all (off the chips) are NaN; BKGRATE is estimated from
the events beyond the aperture when enough exposed area is left there, and omitted otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.wcs import WCS

from survey_mass.constants import XRAY_BAND_KEV
from survey_mass.sources.archive import open_fits
from survey_mass.sources.base import CutoutError
from survey_mass.wcs import tan_wcs


@dataclass
class EventList:
    """A level-2 event list reduced to what binning needs: sky positions and the band mask."""

    obsid: int
    ra: np.ndarray  # deg, every event
    dec: np.ndarray
    in_band: np.ndarray  # bool, 0.5-7 keV
    exposure: float  # s
    detector: str
    header: dict


def event_wcs(header, xcol: int, ycol: int, what: str) -> WCS:
    """Celestial WCS of the sky-pixel columns numbered ``xcol``, ``ycol`` (1-based)."""
    wcs = WCS(naxis=2)
    try:
        wcs.wcs.ctype = [header[f"TCTYP{xcol}"], header[f"TCTYP{ycol}"]]
        wcs.wcs.crval = [header[f"TCRVL{xcol}"], header[f"TCRVL{ycol}"]]
        wcs.wcs.crpix = [header[f"TCRPX{xcol}"], header[f"TCRPX{ycol}"]]
        wcs.wcs.cdelt = [header[f"TCDLT{xcol}"], header[f"TCDLT{ycol}"]]
        wcs.wcs.cunit = [header.get(f"TCUNI{xcol}", "deg"), header.get(f"TCUNI{ycol}", "deg")]
        wcs.wcs.set()
    except (KeyError, ValueError) as err:
        raise CutoutError("missing_wcs", f"{what}: sky columns lack a WCS ({err})") from err
    if not wcs.has_celestial:
        raise CutoutError(
            "missing_wcs", f"{what}: sky columns are not celestial ({list(wcs.wcs.ctype)})"
        )
    return wcs


def read_events(path: Path | str, obsid: int, what: str) -> EventList:
    """Parse an evt2 file (plain or gzip); CutoutError("bad_fits"/"missing_wcs") if unusable."""
    hdul = open_fits(str(path), what)
    try:
        try:
            hdu = hdul["EVENTS"]
        except KeyError as err:
            raise CutoutError("bad_fits", f"{what}: no EVENTS extension") from err
        h = hdu.header
        names = [n.lower() for n in hdu.columns.names]
        for needed in ("x", "y", "energy"):
            if needed not in names:
                raise CutoutError("bad_fits", f"{what}: EVENTS lacks column {needed!r}")
        xcol, ycol = names.index("x") + 1, names.index("y") + 1
        wcs = event_wcs(h, xcol, ycol, what)
        exposure = float(h.get("EXPOSURE") or h.get("LIVETIME") or h.get("ONTIME") or 0.0)
        if not exposure > 0:
            raise CutoutError("bad_fits", f"{what}: EVENTS header has no EXPOSURE")
        data = hdu.data
        x = np.asarray(data.field(xcol - 1), dtype=np.float64)
        y = np.asarray(data.field(ycol - 1), dtype=np.float64)
        energy = np.asarray(data.field(names.index("energy")), dtype=np.float64)
        ra, dec = wcs.pixel_to_world_values(x - 1.0, y - 1.0)  # sky pixels are 1-based
        lo, hi = (e * 1000.0 for e in XRAY_BAND_KEV)  # eV
        keep = {
            k: h[k]
            for k in ("OBS_ID", "DETNAM", "INSTRUME", "DATE-OBS", "OBJECT", "ASCDSVER")
            if k in h
        }
        return EventList(
            obsid,
            ra.astype(np.float64),
            dec.astype(np.float64),
            (energy >= lo) & (energy <= hi),
            exposure,
            str(h.get("DETNAM", h.get("INSTRUME", "ACIS"))),
            keep,
        )
    finally:
        hdul.close()


def bin_events(events: EventList, wcs: WCS, npix: int, mask_unexposed: bool):
    """(counts image with NaN off the chips, exposed-pixel mask) on the cutout grid."""
    col, row = wcs.world_to_pixel_values(events.ra, events.dec)
    i = np.floor(col + 0.5)
    j = np.floor(row + 0.5)
    inside = (i >= 0) & (i < npix) & (j >= 0) & (j < npix)
    band = inside & events.in_band
    image = (
        np.bincount((j[band] * npix + i[band]).astype(np.int64), minlength=npix * npix)
        .reshape(npix, npix)
        .astype(np.float32)
    )
    exposed = np.ones((npix, npix), bool)
    if mask_unexposed:
        cell = max(1, int(round((1.0 / 60.0) / abs(wcs.wcs.cdelt[0]))))  # ~1 arcmin
        ncell = -(-npix // cell)
        occupied = np.zeros((ncell, ncell), bool)
        occupied[(j[inside] // cell).astype(int), (i[inside] // cell).astype(int)] = True
        exposed = np.repeat(np.repeat(occupied, cell, 0), cell, 1)[:npix, :npix]
        image[~exposed] = np.nan
    return image, exposed


def estimate_background(
    events: EventList, ra: float, dec: float, radius_deg: float, min_area_arcmin2: float
) -> float | None:
    """counts/s/arcmin^2 in band from 1' cells beyond ``radius_deg``; None if too little area.

    Cells are on a tangent plane at the target; cells at chip edges (few events of any energy)
    and cells with point sources (far above the median) are left out.
    """
    cell_deg = 1.0 / 60.0
    grid = tan_wcs(ra, dec, cell_deg, 2)
    cx, cy = grid.world_to_pixel_values(events.ra, events.dec)
    ok = np.isfinite(cx) & np.isfinite(cy)
    ix, iy = np.floor(cx[ok]).astype(np.int64), np.floor(cy[ok]).astype(np.int64)
    in_band = events.in_band[ok]
    # centre distance of each cell, in deg
    keys, inverse = np.unique(np.stack([ix, iy]), axis=1, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse)
    band = np.bincount(inverse, weights=in_band)
    centre = (keys + 0.5 - 0.5) * cell_deg  # pixel 0.5 is the tangent point of a 2-pixel grid
    far = np.hypot(centre[0], centre[1]) > radius_deg + cell_deg
    if not far.any():
        return None
    full = far & (total >= 0.5 * np.median(total[far]))
    if full.sum() * 1.0 < min_area_arcmin2:
        return None
    counts = band[full]
    med = np.median(counts)
    clean = counts[counts <= med + 5 * math.sqrt(max(med, 1.0))]
    return float(clean.mean() / events.exposure)
