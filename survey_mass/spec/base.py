"""The one pydantic base of every spec: unknown keys are errors, so a typo never passes silently."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A spec table: ``extra="forbid"`` (a misspelt key is refused with its name)."""

    model_config = ConfigDict(extra="forbid")


class FrozenStrictModel(BaseModel):
    """A strict spec that is also hashable (used as a cache key by the simulator)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
