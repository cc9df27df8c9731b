"""Sky footprints: where a job looks for clusters (``targets.footprint``).

Their HEALPix tiling is ``survey_mass.pixel_math.footprint_pixels``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from survey_mass.pixel_math import angular_separation_deg
from survey_mass.spec.base import StrictModel


class ConeFootprint(StrictModel):
    """All sky within ``radius_deg`` of (ra, dec)."""

    kind: Literal["cone"] = "cone"
    ra: float = Field(ge=0.0, lt=360.0, description="centre right ascension [deg]")
    dec: float = Field(ge=-90.0, le=90.0, description="centre declination [deg]")
    radius_deg: float = Field(gt=0.0, le=180.0, description="radius [deg]")

    def contains(self, ra, dec) -> np.ndarray:
        return angular_separation_deg(self.ra, self.dec, ra, dec) <= self.radius_deg

    def area_deg2(self) -> float:
        return float(2 * np.pi * (1 - np.cos(np.radians(self.radius_deg))) * (180 / np.pi) ** 2)

    def _covering_cone(self) -> tuple[float, float, float]:
        return self.ra, self.dec, self.radius_deg


class BoxFootprint(StrictModel):
    """An RA/Dec rectangle; ``ra_min > ra_max`` wraps through RA = 0."""

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
        if self.ra_min == self.ra_max:
            raise ValueError(
                f"ra_min = ra_max = {self.ra_min} is a box of no width; for every RA give "
                "ra_min = 0 and ra_max = 360"
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
        radius = float(np.max(angular_separation_deg(ra_c, dec_c, corners_ra, corners_dec)))
        return ra_c, dec_c, min(radius, 180.0)


Footprint = Annotated[ConeFootprint | BoxFootprint, Field(discriminator="kind")]
