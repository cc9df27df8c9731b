"""The mock survey's settings (``source.mock``): which universe the simulator draws.

A spec, not the simulator: job specs validate it without importing ``survey_mass.mock``.

``physics`` picks the simulator version: ``"v1"`` is the physics the shipped zoo (xray-v1, sz-v1,
optical-v1, joint-v1) was trained on, kept byte for byte; ``"v2"`` is the physics held to the real
sky (hydrostatic bias in the SZ signal, Planck noise per sky region, SDSS depth in redMaPPer, the
ACIS-I field of view, the real y-map noise spectrum, a K-correction; see README "How realistic is
the mock survey"). The default stays ``"v1"`` until the zoo is retrained on v2. A ``"v1"`` spec
serialises without the key, so job hashes and provenance of existing jobs are unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_serializer, model_validator

from survey_mass.spec.base import FrozenStrictModel

#: The simulator's physics versions; the first is the default.
PHYSICS_VERSIONS = ("v1", "v2")
DEFAULT_PHYSICS = "v1"


class UniverseSpec(FrozenStrictModel):
    """What kind of universe the mock survey draws."""

    seed: int = Field(42, description="master seed: same seed, same universe")
    log10_m500_min: float = Field(
        13.9, ge=13.0, le=15.0, description="lower mass limit [log10 Msun]"
    )
    log10_m500_max: float = Field(
        15.4, ge=13.5, le=16.0, description="upper mass limit [log10 Msun]"
    )
    z_min: float = Field(0.03, gt=0.0, allow_inf_nan=False, description="lowest redshift")
    z_max: float = Field(1.0, le=3.0, description="highest redshift")
    density_scale: float = Field(
        1.0,
        gt=0.0,
        allow_inf_nan=False,
        description="multiplies the mass function (e.g. >1 for dense test fields)",
    )
    physics: Literal["v1", "v2"] = Field(
        DEFAULT_PHYSICS,
        description="simulator version: v1 (what zoo v1 was trained on) or v2 (realistic: zoo v2, the demo)",
    )

    @model_validator(mode="after")
    def _ranges_ordered(self):
        for low, high in (("z_min", "z_max"), ("log10_m500_min", "log10_m500_max")):
            if getattr(self, low) >= getattr(self, high):
                raise ValueError(
                    f"source.mock.{low} ({getattr(self, low)}) must be below {high} "
                    f"({getattr(self, high)}); swap them"
                )
        return self

    @model_serializer(mode="wrap")
    def _drop_default_physics(self, handler):
        """Leave ``physics`` out of dumps when it is the default, so v1 hashes stay as they were."""
        data = handler(self)
        if isinstance(data, dict) and data.get("physics") == DEFAULT_PHYSICS:
            data.pop("physics")
        return data
