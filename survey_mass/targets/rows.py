"""Target rows from a catalog: read in our column names, every row checked.

A row that cannot be weighed (bad position or redshift, duplicate id, outside the footprint) keeps a
``reject`` reason and travels with its shard to the quarantine table.
"""

from __future__ import annotations

import fsspec
import numpy as np
import pandas as pd
from astropy.table import Table

from survey_mass.errors import UserError
from survey_mass.spec.job import JobSpec

TARGET_COLUMNS = ["target_id", "ra", "dec", "z"]

#: reject reason -> what the user should do about it (the quarantine's ``detail``)
REJECT_DETAIL = {
    "missing_id": "the row has no target id; give every row a unique id",
    "invalid_coordinates": "ra/dec missing or non-numeric, or |dec| > 90; fix the catalog row",
    "invalid_redshift": "z missing, non-positive or above 5; fix the catalog row",
    "duplicate_id": "target id seen earlier in the catalog; ids must be unique",
    "outside_footprint": "position lies outside targets.footprint; widen the footprint or drop the row",
}


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
    # a missing id (an empty CSV cell is NaN) is the empty string: check_rows quarantines it
    ids = out["target_id"]
    out["target_id"] = ids.where(ids.notna(), "").astype(str).str.strip()
    for c in ("ra", "dec", "z"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    if spec.targets.max_targets:
        out = out.head(spec.targets.max_targets)
    return out[TARGET_COLUMNS].reset_index(drop=True)


def check_rows(rows: pd.DataFrame, spec: JobSpec) -> pd.DataFrame:
    """Add a ``reject`` column: None for good rows, else the reason code."""
    rows = rows.copy()
    reject = pd.Series([None] * len(rows), dtype=object)
    reject[rows["target_id"].eq("").to_numpy()] = "missing_id"
    # one rule for RA, as the footprints have it: any finite RA is an angle, wrapped into [0, 360)
    bad_pos = ~(np.isfinite(rows["ra"]) & np.isfinite(rows["dec"]) & rows["dec"].between(-90, 90))
    reject[(bad_pos & reject.isna()).to_numpy()] = "invalid_coordinates"
    ra = rows["ra"] % 360.0
    bad_z = ~(np.isfinite(rows["z"]) & (rows["z"] > 0) & (rows["z"] < 5))
    reject[(bad_z & reject.isna()).to_numpy()] = "invalid_redshift"
    duplicate = rows["target_id"].duplicated(keep="first")
    reject[(duplicate & reject.isna()).to_numpy()] = "duplicate_id"
    if spec.targets.footprint is not None:
        outside = ~spec.targets.footprint.contains(ra.to_numpy(), rows["dec"].to_numpy())
        reject[(outside & reject.isna()).to_numpy()] = "outside_footprint"
    rows["reject"] = reject.to_numpy()
    accepted = rows["reject"].isna()
    rows.loc[accepted, "ra"] = ra[accepted]  # quarantined rows keep their input values as given
    return rows
