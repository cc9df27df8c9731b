"""Targets: which clusters a job weighs, grouped into HEALPix shards.

Mock jobs draw targets inside each shard on the worker (the driver never holds the survey); catalog
jobs read the catalog once, check every row, and hand each shard its rows. A row that cannot be
weighed (bad position or redshift, duplicate id, outside the footprint) keeps a ``reject`` reason and
travels with its shard to the quarantine table, so every input row ends in exactly one table.
"""

from __future__ import annotations

from dataclasses import dataclass

import fsspec
import numpy as np
import pandas as pd
from astropy import units as u
from astropy.table import Table

from survey_mass.catalog.layout import UNPLACED
from survey_mass.config import JobSpec
from survey_mass.constants import SPATIAL_INDEX_ORDER
from survey_mass.errors import UserError
from survey_mass.footprint import auto_order, footprint_pixels, healpix
from survey_mass.sources.mock import universe

TARGET_COLUMNS = ["target_id", "ra", "dec", "z"]


@dataclass
class Shard:
    """One unit of work: a HEALPix pixel, and its catalog rows (None: draw from the mock universe)."""

    order: int
    pixel: int
    rows: pd.DataFrame | None = None


def shard_order(spec: JobSpec, n_targets: int | None = None) -> int:
    if spec.targets.shard_order is not None:
        return spec.targets.shard_order
    if spec.source.kind == "mock":
        return auto_order(
            spec.targets.footprint.area_deg2(), universe.clusters_per_deg2(spec.source.mock)
        )
    # catalog: about 256 targets a shard over the whole sky
    return auto_order(41252.96, max(n_targets or 1, 1) / 41252.96)


def plan_shards(spec: JobSpec) -> tuple[int, list[Shard]]:
    """The job's shards, in pixel order."""
    if spec.targets.catalog is None:
        order = shard_order(spec)
        return order, [
            Shard(order, int(p)) for p in footprint_pixels(spec.targets.footprint, order)
        ]
    rows = check_rows(read_catalog(spec), spec)
    order = shard_order(spec, len(rows))
    placed = rows["reject"].ne("invalid_coordinates")
    pix = np.full(len(rows), UNPLACED, dtype=np.int64)
    if placed.any():
        pix[placed.to_numpy()] = healpix(order).lonlat_to_healpix(
            rows.loc[placed, "ra"].to_numpy() * u.deg, rows.loc[placed, "dec"].to_numpy() * u.deg
        )
    rows["_pixel"] = pix
    shards = [
        Shard(order, int(p), g.drop(columns="_pixel").reset_index(drop=True))
        for p, g in rows.groupby("_pixel", sort=True)
    ]
    return order, shards


def read_catalog(spec: JobSpec) -> pd.DataFrame:
    """The target catalog (CSV, Parquet or FITS; local or any fsspec URL) in our column names."""
    url = spec.targets.catalog
    cols = spec.targets.columns
    try:
        with fsspec.open(url, "rb", compression="infer") as fh:
            if ".parq" in url:
                df = pd.read_parquet(fh)
            elif url.endswith((".fits", ".fit", ".fits.gz")):
                df = Table.read(fh, format="fits").to_pandas()
            else:
                df = pd.read_csv(fh)
    except FileNotFoundError as err:
        raise UserError(f"targets.catalog {url!r} does not exist; check the path or URL") from err
    except Exception as err:
        raise UserError(
            f"targets.catalog {url!r} cannot be read as CSV/Parquet/FITS: {err}"
        ) from err
    missing = [f"{ours} -> {theirs!r}" for ours, theirs in cols.items() if theirs not in df.columns]
    if missing:
        raise UserError(
            f"targets.catalog {url!r} lacks column(s) {missing}; it has {list(df.columns)[:20]}: "
            "fix targets.columns"
        )
    out = pd.DataFrame({ours: df[theirs] for ours, theirs in cols.items()})
    out = out.rename(columns={"id": "target_id"})
    out["target_id"] = out["target_id"].astype(str)
    for c in ("ra", "dec", "z"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    if spec.targets.max_targets:
        out = out.head(spec.targets.max_targets)
    return out[TARGET_COLUMNS].reset_index(drop=True)


def check_rows(rows: pd.DataFrame, spec: JobSpec) -> pd.DataFrame:
    """Add a ``reject`` column: None for good rows, else the reason code."""
    rows = rows.copy()
    reject = pd.Series([None] * len(rows), dtype=object)
    bad_pos = ~(
        np.isfinite(rows["ra"])
        & np.isfinite(rows["dec"])
        & rows["dec"].between(-90, 90)
        & rows["ra"].between(-360, 360)
    )
    reject[bad_pos.to_numpy()] = "invalid_coordinates"
    rows["ra"] = rows["ra"] % 360.0
    bad_z = ~(np.isfinite(rows["z"]) & (rows["z"] > 0) & (rows["z"] < 5))
    reject[(bad_z & reject.isna()).to_numpy()] = "invalid_redshift"
    duplicate = rows["target_id"].duplicated(keep="first")
    reject[(duplicate & reject.isna()).to_numpy()] = "duplicate_id"
    if spec.targets.footprint is not None:
        outside = ~spec.targets.footprint.contains(rows["ra"].to_numpy(), rows["dec"].to_numpy())
        reject[(outside & reject.isna()).to_numpy()] = "outside_footprint"
    rows["reject"] = reject.to_numpy()
    return rows


def mock_targets(spec: JobSpec, order: int, pixel: int) -> pd.DataFrame:
    """The mock universe's clusters of one shard, as target rows."""
    clusters = universe.clusters_in(spec.source.mock, spec.targets.footprint, order, pixel)
    rows = clusters[TARGET_COLUMNS].copy()
    rows["reject"] = None
    return rows


def spatial_index(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """HEALPix nested index at order 29 (the catalog's spatial index column)."""
    if len(ra) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(
        healpix(SPATIAL_INDEX_ORDER).lonlat_to_healpix(
            np.asarray(ra) * u.deg, np.asarray(dec) * u.deg
        ),
        dtype=np.int64,
    )
