"""The source stage's one interface, served alike by the mock survey and the real archives.

A source turns (target, instrument) into a FITS HDU list with a valid celestial WCS, so the
preprocessing code path is the same for simulated and real data. A source never raises for one bad
target in a batch: it yields a :class:`CutoutFailure` with a reason that ends in the quarantine table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from astropy.io import fits


@dataclass(frozen=True)
class Target:
    """One cluster to weigh: where it is and at what redshift."""

    target_id: str
    ra: float  # deg, ICRS
    dec: float  # deg, ICRS
    z: float


class CutoutError(Exception):
    """A cutout could not be made for one target; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class Cutout:
    """A cutout of one instrument around one target, as FITS with a celestial WCS.

    ``hdul[0]`` holds the image (2D, or 3D band-first for SDSS ugriz); header keywords that the
    preprocessing needs (EXPOSURE in s, BUNIT, BANDS) travel with it.
    """

    target: Target
    instrument: str
    hdul: fits.HDUList
    meta: dict = field(default_factory=dict)


@dataclass
class CutoutFailure:
    """Why a target got no cutout; becomes a quarantine row."""

    target: Target
    instrument: str
    reason: str
    detail: str = ""


@runtime_checkable
class TargetDrawer(Protocol):
    """A source that also draws its own targets inside a footprint (the mock survey)."""

    def targets_per_deg2(self) -> float:
        """Mean number of targets per square degree (sizes the shards)."""
        ...

    def draw_targets(self, footprint, order: int, pixel: int):
        """The targets of one shard as rows ``target_id, ra, dec, z``."""
        ...


@runtime_checkable
class Source(Protocol):
    """Anything that serves cutouts: the mock survey or an archive fetcher."""

    name: str

    def cutouts(
        self, targets: Iterable[Target], instrument: str
    ) -> Iterator[Cutout | CutoutFailure]:
        """One result per target, in order; failures are yielded, never raised."""
        ...


def cutouts_one_by_one(fetch_one, targets: Iterable[Target], instrument: str):
    """Adapt a per-target ``fetch_one(target) -> HDUList`` into the batch protocol."""
    for target in targets:
        try:
            hdul = fetch_one(target)
        except CutoutError as err:
            yield CutoutFailure(target, instrument, err.reason, err.detail)
        else:
            yield Cutout(target, instrument, hdul)


def fetch_guarded(source: Source, targets: list[Target], instrument: str) -> list:
    """The batch's cutouts and failures. A source should never raise for one target; should it
    (a renderer or reader bug), each target is asked alone, so the bug costs only its rows."""
    try:
        return list(source.cutouts(targets, instrument))
    except Exception:
        items = []
        for t in targets:
            try:
                items += list(source.cutouts([t], instrument))
            except Exception as err:
                detail = f"{type(err).__name__}: {err}"
                items.append(CutoutFailure(t, instrument, "source_error", detail))
        return items
