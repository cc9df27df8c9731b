"""Sky footprints and their HEALPix tiling.

A footprint is where a job looks for clusters; the job is sharded by the nested HEALPix pixels that
cover it, so a shard is a patch of sky, deterministic whatever the number of workers.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix
from pydantic import BaseModel, ConfigDict, Field, model_validator


class ConeFootprint(BaseModel):
    """All sky within ``radius_deg`` of (ra, dec)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["cone"] = "cone"
    ra: float = Field(ge=0.0, lt=360.0, description="centre right ascension [deg]")
    dec: float = Field(ge=-90.0, le=90.0, description="centre declination [deg]")
    radius_deg: float = Field(gt=0.0, le=180.0, description="radius [deg]")

    def contains(self, ra, dec) -> np.ndarray:
        return _angular_separation_deg(self.ra, self.dec, ra, dec) <= self.radius_deg

    def area_deg2(self) -> float:
        return float(2 * np.pi * (1 - np.cos(np.radians(self.radius_deg))) * (180 / np.pi) ** 2)

    def _covering_cone(self) -> tuple[float, float, float]:
        return self.ra, self.dec, self.radius_deg


class BoxFootprint(BaseModel):
    """An RA/Dec rectangle; ``ra_min > ra_max`` wraps through RA = 0."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["box"] = "box"
    ra_min: float = Field(ge=0.0, le=360.0)
    ra_max: float = Field(ge=0.0, le=360.0)
    dec_min: float = Field(ge=-90.0, le=90.0)
    dec_max: float = Field(ge=-90.0, le=90.0)

    @model_validator(mode="after")
    def _dec_ordered(self):
        if self.dec_min >= self.dec_max:
            raise ValueError(
                f"dec_min ({self.dec_min}) must be below dec_max ({self.dec_max}); swap them"
            )
        return self

    def _ra_width(self) -> float:
        return (self.ra_max - self.ra_min) % 360.0 or 360.0

    def contains(self, ra, dec) -> np.ndarray:
        ra = np.asarray(ra, dtype=float)
        dec = np.asarray(dec, dtype=float)
        in_ra = (ra - self.ra_min) % 360.0 <= self._ra_width()
        return in_ra & (dec >= self.dec_min) & (dec <= self.dec_max)

    def area_deg2(self) -> float:
        band = np.sin(np.radians(self.dec_max)) - np.sin(np.radians(self.dec_min))
        return float(np.radians(self._ra_width()) * band * (180 / np.pi) ** 2)

    def _covering_cone(self) -> tuple[float, float, float]:
        ra_c = (self.ra_min + self._ra_width() / 2) % 360.0
        dec_c = 0.5 * (self.dec_min + self.dec_max)
        corners_ra = [self.ra_min, self.ra_max, self.ra_min, self.ra_max, ra_c, ra_c]
        corners_dec = [
            self.dec_min,
            self.dec_min,
            self.dec_max,
            self.dec_max,
            self.dec_min,
            self.dec_max,
        ]
        radius = float(np.max(_angular_separation_deg(ra_c, dec_c, corners_ra, corners_dec)))
        return ra_c, dec_c, min(radius, 180.0)


Footprint = Annotated[ConeFootprint | BoxFootprint, Field(discriminator="kind")]


def healpix(order: int) -> HEALPix:
    return HEALPix(nside=2**order, order="nested")


def footprint_pixels(footprint: ConeFootprint | BoxFootprint, order: int) -> np.ndarray:
    """Sorted nested pixels at ``order`` that may hold sky of the footprint (a safe superset)."""
    hp = healpix(order)
    ra_c, dec_c, radius = footprint._covering_cone()
    margin = hp.pixel_resolution.to_value(u.deg) * 1.5
    pix = hp.cone_search_lonlat(ra_c * u.deg, dec_c * u.deg, min(radius + margin, 180.0) * u.deg)
    if isinstance(footprint, BoxFootprint):
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
        pixel_area = 41252.96 / (12 * 4**order)
        if pixel_area * clusters_per_deg2 <= clusters_per_shard:
            return order
    return 10


def _angular_separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(a, dtype=float)) for a in (ra1, dec1, ra2, dec2))
    sdlat = np.sin((dec2 - dec1) / 2)
    sdlon = np.sin((ra2 - ra1) / 2)
    a = sdlat**2 + np.cos(dec1) * np.cos(dec2) * sdlon**2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))
