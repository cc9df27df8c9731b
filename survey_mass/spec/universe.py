"""The mock survey's settings (``source.mock``): which universe the simulator draws.

A spec, not the simulator: job specs validate it without importing ``survey_mass.mock``.
"""

from __future__ import annotations

from pydantic import Field

from survey_mass.spec.base import FrozenStrictModel


class UniverseSpec(FrozenStrictModel):
    """What kind of universe the mock survey draws."""

    seed: int = Field(42, description="master seed: same seed, same universe")
    log10_m500_min: float = Field(
        13.9, ge=13.0, le=15.0, description="lower mass limit [log10 Msun]"
    )
    log10_m500_max: float = Field(
        15.4, ge=13.5, le=16.0, description="upper mass limit [log10 Msun]"
    )
    z_min: float = Field(0.03, gt=0.0, description="lowest redshift")
    z_max: float = Field(1.0, le=3.0, description="highest redshift")
    density_scale: float = Field(
        1.0, gt=0.0, description="multiplies the mass function (e.g. >1 for dense test fields)"
    )
