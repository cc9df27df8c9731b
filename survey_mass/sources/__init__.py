"""Sources: the mock survey or the real archives, behind one interface (see ``base``)."""

from __future__ import annotations

from survey_mass.errors import UserError
from survey_mass.sources.base import (
    Cutout,
    CutoutError,
    CutoutFailure,
    Source,
    Target,
    TargetDrawer,
)

__all__ = [
    "Cutout",
    "CutoutError",
    "CutoutFailure",
    "Source",
    "Target",
    "TargetDrawer",
    "build_source",
    "target_drawer",
]


def build_source(spec) -> Source:
    """The job's source: the mock survey (default) or the real archive fetchers."""
    if spec.source.kind == "mock":
        from survey_mass.mock.source import MockSource  # the simulator plugs in here, only here

        return MockSource(spec.source.mock)
    from survey_mass.sources.real import build_real_source

    return build_real_source(spec.source.real)


def target_drawer(spec) -> TargetDrawer:
    """The job's source as the drawer of its footprint's targets (only the mock survey is one)."""
    source = build_source(spec)
    if not isinstance(source, TargetDrawer):
        raise UserError(
            f"source.kind = {spec.source.kind!r} cannot draw targets in a footprint: "
            "give targets.catalog (a file or URL of positions and redshifts)"
        )
    return source
