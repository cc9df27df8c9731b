"""One shard on a worker: its targets weighed by every instrument, its two tables written.

A plain function (tests call it directly); ``runner.job`` submits it per shard to the cluster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from survey_mass.catalog.paths import CatalogLayout
from survey_mass.catalog.writer import write_shard
from survey_mass.infer.ensemble import load_ensemble
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
    driver resolved: a worker that sees another copy of the zoo refuses rather than mixes."""
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


def shard_rows(spec: JobSpec, shard: Shard) -> pd.DataFrame:
    """The shard's input rows with a ``reject`` column: its catalog rows, or drawn by the source."""
    if shard.rows is not None:
        return shard.rows
    rows = target_drawer(spec).draw_targets(spec.targets.footprint, shard.order, shard.pixel)
    return rows.assign(reject=None)


def process_shard(
    spec: JobSpec, shard: Shard, models: ModelSet, job_hash: str, run_id: str = "run"
) -> dict:
    """Weigh every target of one shard and write its catalog and quarantine parts."""
    source = build_source(spec)
    rows = shard_rows(spec, shard)
    good = rows[rows["reject"].isna()].reset_index(drop=True)
    targets = [
        Target(r.target_id, float(r.ra), float(r.dec), float(r.z)) for r in good.itertuples()
    ]
    xp = array_module(spec.device)
    results, failures, versions = {}, {}, []
    for inst in spec.instruments:
        ensemble = _loaded(models.ensembles[inst], load_ensemble)
        results[inst], failures[inst] = weigh(
            source, ensemble, targets, inst, xp, spec.batch_size, spec.models.tta
        )
        versions.append(ensemble.version)
    joint = _loaded(models.joint, load_joint) if models.joint else None
    if joint is not None:
        versions.append(joint.version)
    cat = mass_columns(good[TARGET_COLUMNS], results, joint)
    cat["models"] = ",".join(versions)
    cat[SPATIAL_INDEX_COLUMN] = compute_spatial_index(cat["ra"].to_numpy(), cat["dec"].to_numpy())
    weighed = np.isfinite(cat["logm500"].to_numpy())
    # a target none of whose instruments gave a mass goes to the quarantine, with every reason
    quarantine = _quarantine_rows(rows[rows["reject"].notna()], cat[~weighed], failures)
    catalog = cat[weighed].sort_values(SPATIAL_INDEX_COLUMN, kind="stable").reset_index(drop=True)
    return write_shard(
        CatalogLayout(spec.output.url),
        shard.order,
        shard.pixel,
        catalog,
        quarantine,
        spec.instruments,
        job_hash,
        run_id,
        spec.output.partition_rows,
    )
