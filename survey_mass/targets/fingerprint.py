"""What a job's targets are, as digests: of each shard's input rows and of all of them.

A catalog version records them, so a re-run knows whether its inputs changed (and which shards),
whatever the catalog's file looks like: the digest is of the rows as read and checked, not of
the bytes, so re-saving a CSV changes nothing and appending a row changes exactly its shard.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from survey_mass.spec.job import JobSpec
from survey_mass.targets.rows import TARGET_COLUMNS


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def rows_digest(rows: pd.DataFrame) -> str:
    """Digest of a shard's input rows (positions, redshifts, ids and what was rejected)."""
    hashed = pd.util.hash_pandas_object(rows[[*TARGET_COLUMNS, "reject"]], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def shard_digest(spec: JobSpec, order: int, pixel: int, rows: pd.DataFrame | None) -> str:
    """A catalog shard's rows digest; a footprint shard's targets follow from the footprint."""
    if rows is not None:
        return rows_digest(rows)
    footprint = json.dumps(spec.targets.model_dump(mode="json"), sort_keys=True)
    return _sha(footprint, str(order), str(pixel))


def input_fingerprint(spec: JobSpec, shards: list) -> dict:
    """The job's inputs: how targets are chosen, and (for a catalog) its rows as read."""
    fingerprint = {"targets": spec.targets.model_dump(mode="json")}
    if spec.targets.catalog is not None:
        fingerprint["catalog"] = {
            "url": spec.targets.catalog,
            "rows": int(sum(len(s.rows) for s in shards)),
            "digest": _sha(*(f"{s.pixel}:{s.digest}" for s in shards)),
        }
    return fingerprint
