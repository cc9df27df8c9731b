"""The shard plan: a job's targets grouped into HEALPix shards.

Footprint jobs let the source draw each shard's targets on the worker (the driver never holds the
survey); catalog jobs read the catalog once, check every row (``rows``), and hand each shard its
rows, rejected ones included, so every input row ends in exactly one table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from survey_mass.catalog.paths import UNPLACED
from survey_mass.pixel_math import SKY_DEG2, auto_order, footprint_pixels, radec_to_pixels
from survey_mass.sources import target_drawer
from survey_mass.spec.job import JobSpec
from survey_mass.targets.rows import check_rows, read_catalog


@dataclass
class Shard:
    """One unit of work: a HEALPix pixel, and its catalog rows (None: the source draws them)."""

    order: int
    pixel: int
    rows: pd.DataFrame | None = None
    digest: str = ""  # of its input rows (targets.fingerprint): decides what an update redoes


def shard_order(spec: JobSpec, n_targets: int | None = None) -> int:
    if spec.targets.shard_order is not None:
        return spec.targets.shard_order
    if spec.targets.catalog is None:
        density = target_drawer(spec).targets_per_deg2()
        return auto_order(spec.targets.footprint.area_deg2(), density)
    # catalog: about 256 targets a shard over the whole sky
    return auto_order(SKY_DEG2, max(n_targets or 1, 1) / SKY_DEG2)


def plan_shards(spec: JobSpec, order: int | None = None) -> tuple[int, list[Shard]]:
    """The job's shards, in pixel order, each with its input digest. ``order`` (an update keeps
    its parent version's, so unchanged shards stay the same pixels) overrides the automatic one."""
    from survey_mass.targets.fingerprint import shard_digest

    if spec.targets.shard_order is not None:
        order = spec.targets.shard_order
    if spec.targets.catalog is None:
        order = shard_order(spec) if order is None else order
        pixels = footprint_pixels(spec.targets.footprint, order)
        return order, [
            Shard(order, int(p), None, shard_digest(spec, order, p, None)) for p in pixels
        ]
    rows = check_rows(read_catalog(spec), spec)
    order = shard_order(spec, len(rows)) if order is None else order
    placed = rows["reject"].ne("invalid_coordinates")
    pix = np.full(len(rows), UNPLACED, dtype=np.int64)
    if placed.any():
        pix[placed.to_numpy()] = radec_to_pixels(
            rows.loc[placed, "ra"].to_numpy(), rows.loc[placed, "dec"].to_numpy(), order
        )
    rows["_pixel"] = pix
    shards = []
    for p, group in rows.groupby("_pixel", sort=True):
        group = group.drop(columns="_pixel").reset_index(drop=True)
        shards.append(Shard(order, int(p), group, shard_digest(spec, order, int(p), group)))
    return order, shards
