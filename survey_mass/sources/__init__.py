"""Sources: the mock survey or the real archives, behind one interface (see ``base``)."""

from __future__ import annotations

from survey_mass.sources.base import Cutout, CutoutError, CutoutFailure, Source, Target

__all__ = ["Cutout", "CutoutError", "CutoutFailure", "Source", "Target", "build_source"]


def build_source(spec) -> Source:
    """The job's source: the mock survey (default) or the real archive fetchers."""
    if spec.source.kind == "mock":
        from survey_mass.sources.mock.source import MockSource

        return MockSource(spec.source.mock)
    from survey_mass.sources.real import build_real_source

    return build_real_source(spec.source.real)
