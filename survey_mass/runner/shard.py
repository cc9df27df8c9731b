"""One shard on a worker: its targets weighed by every instrument, its two tables written.

A plain function (tests call it directly); ``runner.job`` submits it per shard to the cluster.
In an update, a shard whose inputs did not change is carried over from the parent version (its
files copied, hash-checked), and a changed shard weighs only its new or changed targets, reusing
the parent's rows of the others.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from survey_mass.catalog.paths import CATALOG, CatalogLayout
from survey_mass.catalog.writer import write_bytes, write_shard
from survey_mass.infer.calibration_map import load_map
from survey_mass.infer.ensemble import forget, load_ensemble
from survey_mass.infer.joint import load_joint
from survey_mass.infer.masses import mass_columns
from survey_mass.infer.weigh import weigh
from survey_mass.pixel_math import SPATIAL_INDEX_COLUMN, compute_spatial_index
from survey_mass.sources import build_source, target_drawer
from survey_mass.sources.base import Target
from survey_mass.spec.job import JobSpec
from survey_mass.targets import TARGET_COLUMNS, Shard
from survey_mass.targets.rows import REJECT_DETAIL
from survey_mass.xp import array_module
from survey_mass.zoo.manifest import ModelIntegrityError
from survey_mass.zoo.registry import ModelSet, ZooEntry


def _loaded(entry: ZooEntry, load):
    """The entry loaded in this process (hash-checked again here), and the same bytes the
    driver resolved: a worker that sees another copy of the zoo refuses rather than mixes. A warm
    worker that loaded the entry before it was retrained in place loads it again."""
    model = load(entry.path)
    if model.version != entry.version:
        forget(entry.path)
        model = load(entry.path)
    if model.version != entry.version:
        raise ModelIntegrityError(
            f"{entry.path} is {model.version} on this worker but {entry.version} on the driver: "
            "give every worker the same zoo"
        )
    return model


def _quarantine_rows(rejected: pd.DataFrame, failed: pd.DataFrame, failures: dict) -> pd.DataFrame:
    """Rejected inputs and targets no instrument weighed, each with every reason and detail."""
    bad_input = rejected[TARGET_COLUMNS].copy()
    bad_input["reason"] = rejected["reject"].to_numpy()
    bad_input["detail"] = [REJECT_DETAIL[r] for r in bad_input["reason"]]
    failed = failed[TARGET_COLUMNS].copy()
    reasons = [
        [(f"{i}:{f[t].reason}", f[t].detail) for i, f in failures.items() if t in f]
        for t in failed["target_id"]
    ]
    failed["reason"] = [";".join(r for r, _ in rs) for rs in reasons]
    failed["detail"] = [" | ".join(d for _, d in rs) for rs in reasons]
    return pd.concat([bad_input, failed], ignore_index=True)


@dataclass(frozen=True)
class ParentShard:
    """The same pixel in the version an update starts from, made by the same recipe."""

    url: str  # the parent version's folder
    marker: dict  # its done marker
    carry: bool  # the shard's inputs are unchanged: copy its files


def carry_over(parent: ParentShard, layout: CatalogLayout, run_id: str) -> dict | None:
    """Copy the parent's files of the shard, each checked against its sha256, then the marker;
    None (nothing written) when a parent file is damaged: then the shard is weighed again."""
    source = CatalogLayout(parent.url, output=parent.url)
    blobs = []
    for record in parent.marker["files"]:
        try:
            data = source.fs.cat_file(source.absolute(record["path"]))
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            return None
        blobs.append((record["path"], data))
    for path, data in blobs:
        write_bytes(layout, layout.absolute(path), data, run_id)
    marker = {**parent.marker, "weighed": 0, "reused": parent.marker["rows"], "carried": True}
    write_bytes(layout, layout.done_marker(marker["pixel"]), _json(marker), run_id)
    return marker


def _json(data: dict) -> bytes:
    import json

    return json.dumps(data).encode()


def reusable_rows(parent: ParentShard | None) -> pd.DataFrame | None:
    """The parent's catalog rows of the shard (weighed by the same recipe), to reuse by target."""
    if parent is None:
        return None
    source = CatalogLayout(parent.url, output=parent.url)
    files = [f["path"] for f in parent.marker["files"] if f["path"].startswith(CATALOG + "/")]
    if not files:
        return None
    frames = []
    for path in files:
        with source.fs.open(source.absolute(path), "rb") as fh:
            frames.append(pd.read_parquet(fh))
    return pd.concat(frames, ignore_index=True)


def split_reused(good: pd.DataFrame, previous: pd.DataFrame | None):
    """(rows to weigh, parent rows reused): a target is reused when its id, position and redshift
    are exactly those the parent weighed."""
    if previous is None or not len(good):
        return good, None
    keys = good[TARGET_COLUMNS].merge(
        previous[TARGET_COLUMNS].drop_duplicates("target_id"), how="left", indicator=True
    )
    same = (keys["_merge"] == "both").to_numpy()
    ids = set(good.loc[same, "target_id"])
    reused = previous[previous["target_id"].isin(ids)].drop_duplicates("target_id")
    return good[~same].reset_index(drop=True), reused.reset_index(drop=True)


def shard_rows(spec: JobSpec, shard: Shard) -> pd.DataFrame:
    """The shard's input rows with a ``reject`` column: its catalog rows, or drawn by the source."""
    if shard.rows is not None:
        return shard.rows
    rows = target_drawer(spec).draw_targets(spec.targets.footprint, shard.order, shard.pixel)
    return rows.assign(reject=None)


def _weigh_rows(spec: JobSpec, rows: pd.DataFrame, models: ModelSet):
    """Mass columns of ``rows`` by every instrument (and the joint model), and the failures."""
    source = build_source(spec)
    targets = [
        Target(r.target_id, float(r.ra), float(r.dec), float(r.z)) for r in rows.itertuples()
    ]
    xp = array_module(spec.device)
    results, failures, versions, maps = {}, {}, [], {}
    for inst in spec.instruments:
        entry = models.ensembles[inst]
        ensemble = _loaded(entry, load_ensemble)
        results[inst], failures[inst] = weigh(
            source, ensemble, targets, inst, xp, spec.batch_size, spec.models.tta
        )
        maps[inst] = load_map(entry.path, entry.manifest) if spec.models.calibrated else None
        versions.append(ensemble.version + ("+map" if maps[inst] else ""))
    joint = _loaded(models.joint, load_joint) if models.joint else None
    if joint is not None:
        maps["joint"] = (
            load_map(models.joint.path, models.joint.manifest) if spec.models.calibrated else None
        )
        versions.append(joint.version + ("+map" if maps["joint"] else ""))
    cat = mass_columns(rows[TARGET_COLUMNS], results, joint, maps)
    cat["models"] = ",".join(versions)
    cat[SPATIAL_INDEX_COLUMN] = compute_spatial_index(cat["ra"].to_numpy(), cat["dec"].to_numpy())
    return cat, failures


def process_shard(
    spec: JobSpec,
    shard: Shard,
    models: ModelSet,
    job_hash: str,
    run_id: str = "run",
    version_url: str | None = None,
    parent: ParentShard | None = None,
) -> dict:
    """Weigh the targets of one shard and write its catalog and quarantine parts into the
    version at ``version_url`` (default: the output itself); see the module doc for ``parent``."""
    layout = (
        CatalogLayout(version_url, output=spec.output.url)
        if version_url
        else CatalogLayout(spec.output.url)
    )
    if parent is not None and parent.carry and (marker := carry_over(parent, layout, run_id)):
        return marker
    rows = shard_rows(spec, shard)
    good = rows[rows["reject"].isna()].reset_index(drop=True)
    todo, reused = split_reused(good, reusable_rows(parent))
    cat, failures = _weigh_rows(spec, todo, models)
    weighed = np.isfinite(cat["logm500"].to_numpy())
    # a target none of whose instruments gave a mass goes to the quarantine, with every reason
    quarantine = _quarantine_rows(rows[rows["reject"].notna()], cat[~weighed], failures)
    parts = [c for c in (reused, cat[weighed]) if c is not None and len(c)]
    catalog = pd.concat(parts, ignore_index=True) if parts else cat[weighed]
    catalog = catalog.sort_values([SPATIAL_INDEX_COLUMN, "target_id"], kind="stable")
    extra = {
        "inputs": shard.digest,
        "weighed": len(todo),
        "reused": 0 if reused is None else len(reused),
        "carried": False,
    }
    return write_shard(
        layout,
        shard.order,
        shard.pixel,
        catalog.reset_index(drop=True),
        quarantine,
        spec.instruments,
        job_hash,
        run_id,
        spec.output.partition_rows,
        extra,
    )
