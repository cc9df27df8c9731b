"""HEALPix math, one home for it: orders, the spatial index, footprint tiling, partition folders.

Everything is nested HEALPix (as HATS): a pixel at order K holds the four pixels at K+1 numbered
4p..4p+3, so the order-29 spatial index ``_healpix_29`` gives any coarser pixel by a bit shift.
"""

from __future__ import annotations

import functools

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix

#: order of the catalog's spatial index column (as HATS: ``_healpix_29``)
SPATIAL_INDEX_ORDER = 29
SPATIAL_INDEX_COLUMN = f"_healpix_{SPATIAL_INDEX_ORDER}"
#: pixels per ``Dir=`` folder of a partitioned catalog (the HATS convention)
DIR_SIZE = 10_000
SKY_DEG2 = 41252.96


def healpix(order: int) -> HEALPix:
    return HEALPix(nside=2**order, order="nested")


def compute_spatial_index(ra, dec) -> np.ndarray:
    """The order-29 nested pixel of each (ra, dec) [deg]: the catalog's spatial index."""
    if len(ra) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(
        healpix(SPATIAL_INDEX_ORDER).lonlat_to_healpix(
            np.asarray(ra) * u.deg, np.asarray(dec) * u.deg
        ),
        dtype=np.int64,
    )


def pixels_at_order(spatial_index, order: int) -> np.ndarray:
    """The order-``order`` pixel holding each order-29 spatial index."""
    return np.asarray(spatial_index, dtype=np.int64) >> (2 * (SPATIAL_INDEX_ORDER - order))


def radec_to_pixels(ra, dec, order: int) -> np.ndarray:
    """The nested pixel at ``order`` of each (ra, dec) [deg]."""
    return np.asarray(
        healpix(order).lonlat_to_healpix(
            np.asarray(ra, dtype=float) * u.deg, np.asarray(dec, dtype=float) * u.deg
        ),
        dtype=np.int64,
    )


def partition_dir(pixel: int) -> int:
    """The ``Dir=`` number of a partition: pixels grouped by ten thousands (HATS)."""
    return pixel // DIR_SIZE * DIR_SIZE


def adaptive_partitions(
    spatial_index: np.ndarray, order: int, pixel: int, max_rows: int, max_order: int = 19
) -> dict[tuple[int, int], np.ndarray]:
    """(order, pixel) -> row indices: the pixel split into children until each holds at most
    ``max_rows`` rows (as hats-import sizes partitions); pixels with no row get no partition."""
    index = np.asarray(spatial_index, dtype=np.int64)

    def split(rows: np.ndarray, k: int, p: int) -> dict:
        if len(rows) <= max_rows or k >= max_order:
            return {(k, p): rows}
        children = pixels_at_order(index[rows], k + 1)
        found = {}
        for child in np.unique(children):
            found |= split(rows[children == child], k + 1, int(child))
        return found

    rows = np.arange(len(index))
    return split(rows, order, pixel) if len(rows) else {}


def footprint_pixels(footprint, order: int) -> np.ndarray:
    """Sorted nested pixels at ``order`` that may hold sky of the footprint (a safe superset)."""
    hp = healpix(order)
    ra_c, dec_c, radius = footprint._covering_cone()
    margin = hp.pixel_resolution.to_value(u.deg) * 1.5
    pix = hp.cone_search_lonlat(ra_c * u.deg, dec_c * u.deg, min(radius + margin, 180.0) * u.deg)
    if footprint.kind == "box":
        # keep pixels whose boundary or centre touches the box, or that hold the box's centre
        bounds_lon, bounds_lat = hp.boundaries_lonlat(pix, step=4)
        centre_lon, centre_lat = hp.healpix_to_lonlat(pix)
        lon = np.column_stack([bounds_lon.to_value(u.deg), centre_lon.to_value(u.deg)])
        lat = np.column_stack([bounds_lat.to_value(u.deg), centre_lat.to_value(u.deg)])
        touches = footprint.contains(lon, lat).any(axis=1)
        touches |= pix == hp.lonlat_to_healpix(ra_c * u.deg, dec_c * u.deg)
        pix = pix[touches]
    return np.sort(np.asarray(pix, dtype=np.int64))


def auto_order(area_deg2: float, clusters_per_deg2: float, clusters_per_shard: int = 256) -> int:
    """The HEALPix order whose pixels hold about ``clusters_per_shard`` clusters (between 0 and 10)."""
    for order in range(11):
        pixel_area = SKY_DEG2 / (12 * 4**order)
        if pixel_area * clusters_per_deg2 <= clusters_per_shard:
            return order
    return 10


def angular_separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle separation [deg] by the haversine formula (exact at small angles)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=float)) for a in (ra1, dec1, ra2, dec2))
    sdlat = np.sin((dec2 - dec1) / 2)
    sdlon = np.sin((ra2 - ra1) / 2)
    a = sdlat**2 + np.cos(dec1) * np.cos(dec2) * sdlon**2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def unit_vectors(ra, dec) -> np.ndarray:
    """(N, 3) Cartesian unit vectors of (ra, dec) [deg] (for chord-distance trees)."""
    ra, dec = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    cos_dec = np.cos(dec)
    return np.column_stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)])


@functools.lru_cache(maxsize=65_536)
def pixel_cone(order: int, pixel: int, step: int = 16) -> tuple[float, float, float]:
    """(ra, dec, radius) [deg] of a cone holding the whole nested pixel: its centre and the
    largest distance to ``step`` points per edge of its boundary, widened by a hair for rounding
    (the farthest points of a HEALPix pixel are its vertices, which the boundary samples hold).
    Pure geometry, so cached per process."""
    hp = healpix(order)
    lon, lat = hp.healpix_to_lonlat(int(pixel))
    b_lon, b_lat = hp.boundaries_lonlat(int(pixel), step=step)
    ra, dec = float(lon.to_value(u.deg)), float(lat.to_value(u.deg))
    reach = angular_separation_deg(ra, dec, b_lon.to_value(u.deg), b_lat.to_value(u.deg)).max()
    return ra, dec, float(reach) * (1 + 1e-6) + 1e-9
