"""The job: plan shards, weigh each on a Dask worker, write it, finalize the catalog.

``process_shard`` is a plain function (tests call it directly); ``run_job`` is the thin wiring that
submits it per shard to the cluster, skips shards already done, and writes the metadata last.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from survey_mass import __version__
from survey_mass.catalog.layout import CatalogLayout
from survey_mass.catalog.schema import FLAG_LARGE_SPREAD, FLAG_MISSING
from survey_mass.catalog.writer import done_shards, finalize, is_complete, write_shard
from survey_mass.config import JobSpec
from survey_mass.errors import UserError
from survey_mass.infer.ensemble import load_ensemble, resolve_entry
from survey_mass.infer.joint import JOINT, JointModel, inverse_variance, load_joint
from survey_mass.models.manifest import (
    ModelIntegrityError,
    entry_version,
    read_manifest,
    verify_manifest,
)
from survey_mass.preprocess import PREPROCESSORS
from survey_mass.preprocess.batch import Prepared
from survey_mass.sources import build_source
from survey_mass.sources.base import Cutout, CutoutFailure, Target
from survey_mass.targets import Shard, mock_targets, plan_shards, spatial_index
from survey_mass.xp import array_module, to_numpy

LARGE_SPREAD_DEX = 0.15
#: shards in flight: at least this many, or this many per worker thread (workers may join late)
MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD = 8, 4


#: the joint entry ``models.joint = "auto"`` uses when it was fitted on the job's ensembles
SHIPPED_JOINT = "joint-v1"


def model_paths(spec: JobSpec) -> dict[str, str]:
    """Zoo folder per instrument, and under ``"joint"`` the joint entry when one combines them."""
    paths = {
        inst: str(resolve_entry(getattr(spec.models, inst), spec.models.zoo))
        for inst in spec.instruments
    }
    joint = joint_path(spec, paths)
    return {**paths, JOINT: joint} if joint else paths


def joint_path(spec: JobSpec, paths: dict[str, str]) -> str | None:
    """The joint entry for ``models.joint``, or None for the inverse-variance mean.

    A joint model is only valid for the ensembles it was fitted on: ``auto`` falls back to the
    inverse-variance mean for others, a named entry is refused.
    """
    choice = spec.models.joint
    if choice == "inverse-variance":
        return None
    auto = choice == "auto"
    try:
        path = resolve_entry(SHIPPED_JOINT if auto else choice, spec.models.zoo)
    except UserError:
        if auto:
            return None
        raise
    versions = {inst: entry_version(read_manifest(p)) for inst, p in paths.items()}
    try:
        mismatch = JointModel(path).mismatch(versions)
    except (ModelIntegrityError, ValueError, FileNotFoundError) as err:
        raise UserError(f"models.joint: {err}") from err
    if not mismatch:
        return str(path)
    if auto:
        return None
    raise UserError(
        f"models.joint = {choice!r} cannot combine this job's ensembles ({'; '.join(mismatch)}): "
        "set models.joint = 'inverse-variance', or fit a joint entry on them "
        "(survey-mass train jobs/train_joint.toml)"
    )


def check_models(paths: dict[str, str]) -> None:
    """Refuse, before any worker starts, a zoo entry whose files fail their sha256 checks.

    Workers verify again when they load; checking here turns a tampered or half-copied model into
    one clear error instead of a traceback from every worker's plugin.
    """
    for inst, path in paths.items():
        try:
            verify_manifest(path)
        except (ModelIntegrityError, ValueError, FileNotFoundError) as err:
            raise UserError(f"models.{inst}: {err}") from err


def job_hash(spec: JobSpec, paths: dict[str, str]) -> str:
    """What makes two runs write the same catalog: the job minus where it runs, and the model bytes."""
    relevant = spec.model_dump(
        mode="json", exclude={"cluster": True, "output": True, "batch_size": True}
    )
    hashes = {inst: [m["sha256"] for m in read_manifest(p)["members"]] for inst, p in paths.items()}
    blob = json.dumps({"spec": relevant, "models": hashes}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _prepare(ensemble, cutouts: list[Cutout], xp) -> Prepared:
    """The batch preprocessed, keeping only model-ready rows: the model's input shape, all finite.

    Should the preprocessor raise on the batch, each cutout is tried alone: a cutout it did not
    foresee (an extra band, a header value that is not a number) costs its own row, quarantined
    with the error, never its batch and shard.
    """
    prepare = PREPROCESSORS[ensemble.preprocessing]
    shape = tuple(ensemble.members[0][0].input_shape[1:])
    try:
        parts = [prepare(cutouts, xp)]
    except Exception:
        parts = []
        for c in cutouts:
            try:
                parts.append(prepare([c], xp))
            except Exception as err:
                failure = CutoutFailure(
                    c.target, c.instrument, "preprocessing_error", f"{type(err).__name__}: {err}"
                )
                parts.append(Prepared(None, [], [failure]))
    inputs, kept, failures = [], [], []
    for part in parts:
        failures += part.failures
        if not part.cutouts:
            continue
        if tuple(part.inputs.shape[1:]) != shape:
            detail = f"model input {tuple(part.inputs.shape[1:])}, {ensemble.name} takes {shape}"
            failures += [
                CutoutFailure(c.target, c.instrument, "bad_shape", detail) for c in part.cutouts
            ]
            continue
        finite = to_numpy(xp.isfinite(part.inputs.reshape(len(part.cutouts), -1)).all(axis=1))
        for c, ok in zip(part.cutouts, finite, strict=True):
            if not ok:
                detail = (
                    "preprocessing gave NaN/inf pixels: check the header values it uses (EXPOSURE)"
                )
                failures.append(CutoutFailure(c.target, c.instrument, "nonfinite_input", detail))
        if finite.all():
            inputs.append(part.inputs)
        elif finite.any():
            inputs.append(part.inputs[xp.asarray(np.flatnonzero(finite))])
        kept += [c for c, ok in zip(part.cutouts, finite, strict=True) if ok]
    if not inputs:
        return Prepared(xp.zeros((0, *shape), dtype=xp.float32), [], failures)
    return Prepared(inputs[0] if len(inputs) == 1 else xp.concatenate(inputs), kept, failures)


def _fetch(source, targets: list[Target], instrument: str) -> list:
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


def weigh(
    source, ensemble, targets: list[Target], instrument: str, xp, batch_size: int, tta: bool
) -> tuple[dict, dict]:
    """(target_id -> (log M, spread, sigma), target_id -> failure) of one instrument's ensemble.

    The one path from targets to masses: the job's shards and the joint model's fitting use it.
    """
    results, failures = {}, {}
    for start in range(0, len(targets), batch_size):
        chunk = targets[start : start + batch_size]
        cutouts = []
        for item in _fetch(source, chunk, instrument):
            if isinstance(item, CutoutFailure):
                failures[item.target.target_id] = item
            else:
                cutouts.append(item)
        prepared = _prepare(ensemble, cutouts, xp)
        for f in prepared.failures:
            failures[f.target.target_id] = f
        if prepared.cutouts:
            z = np.array([c.target.z for c in prepared.cutouts])
            pred = ensemble.predict(prepared.inputs, z=z, xp=xp, tta=tta, batch_size=batch_size)
            for i, c in enumerate(prepared.cutouts):
                if np.isnan(pred.log10_m500[i]):
                    failures[c.target.target_id] = CutoutFailure(
                        c.target,
                        instrument,
                        "redshift_outside_model",
                        f"z = {c.target.z:.3f} is outside the redshift bins of {ensemble.name}",
                    )
                else:
                    results[c.target.target_id] = (
                        pred.log10_m500[i],
                        pred.spread[i],
                        pred.sigma[i],
                    )
    return results, failures


def process_shard(spec: JobSpec, shard: Shard, paths: dict[str, str], job_hash_: str) -> dict:
    """Weigh every target of one shard and write its catalog and quarantine parts."""
    rows = shard.rows if shard.rows is not None else mock_targets(spec, shard.order, shard.pixel)
    rejected = rows[rows["reject"].notna()]
    good = rows[rows["reject"].isna()].reset_index(drop=True)
    targets = [
        Target(r.target_id, float(r.ra), float(r.dec), float(r.z)) for r in good.itertuples()
    ]
    xp = array_module(spec.device)
    per_inst, versions = {}, []
    source = build_source(spec)
    for inst in spec.instruments:
        ensemble = load_ensemble(paths[inst])
        per_inst[inst] = weigh(
            source, ensemble, targets, inst, xp, spec.batch_size, spec.models.tta
        )
        versions.append(ensemble.version)

    cat = good[["target_id", "ra", "dec", "z"]].copy()
    flags = np.zeros(len(cat), dtype=np.int32)
    means, sigmas = {}, {}
    for inst in spec.instruments:
        results, _ = per_inst[inst]
        values = np.array(
            [results.get(t, (np.nan,) * 3) for t in cat["target_id"]], dtype=float
        ).reshape(-1, 3)
        cat[f"logm500_{inst}"], cat[f"logm500_{inst}_spread"], cat[f"logm500_{inst}_sigma"] = (
            values.T
        )
        flags |= np.where(np.isnan(values[:, 0]), FLAG_MISSING[inst], 0).astype(np.int32)
        flags |= np.where(values[:, 1] > LARGE_SPREAD_DEX, FLAG_LARGE_SPREAD, 0).astype(np.int32)
        means[inst], sigmas[inst] = values[:, 0], values[:, 2]
    if JOINT in paths:
        joint_model = load_joint(paths[JOINT])
        joint = joint_model.combine(cat["z"].to_numpy(), means, sigmas)
        versions.append(joint_model.version)
    else:
        joint = inverse_variance(means, sigmas)
    weighed = np.isfinite(joint.log10_m500)
    m, sigma, half95 = joint.log10_m500, joint.sigma, joint.half_width_95
    cat["logm500"], cat["logm500_sigma"] = m, sigma
    cat["logm500_p16"], cat["logm500_p84"] = m - sigma, m + sigma
    cat["logm500_p2_5"], cat["logm500_p97_5"] = m - half95, m + half95
    cat["flags"] = flags
    cat["models"] = ",".join(versions)
    cat["_healpix_29"] = spatial_index(cat["ra"].to_numpy(), cat["dec"].to_numpy())

    # a target none of whose instruments gave a mass goes to the quarantine, with every reason
    failed = cat.loc[~weighed, ["target_id", "ra", "dec", "z"]].copy()
    reasons = []
    for t in failed["target_id"]:
        fs = [per_inst[i][1].get(t) for i in spec.instruments]
        reasons.append(
            [(f"{i}:{f.reason}", f.detail) for i, f in zip(spec.instruments, fs, strict=True) if f]
        )
    failed["reason"] = [";".join(r for r, _ in rs) for rs in reasons]
    failed["detail"] = [" | ".join(d for _, d in rs) for rs in reasons]
    bad_input = rejected[["target_id", "ra", "dec", "z"]].copy()
    bad_input["reason"] = rejected["reject"].to_numpy()
    bad_input["detail"] = [_REJECT_DETAIL[r] for r in bad_input["reason"]]
    quarantine = pd.concat([bad_input, failed], ignore_index=True)
    catalog = cat[weighed].sort_values("_healpix_29", kind="stable").reset_index(drop=True)
    return write_shard(
        CatalogLayout(spec.output.url),
        shard.order,
        shard.pixel,
        catalog,
        quarantine,
        spec.instruments,
        job_hash_,
    )


_REJECT_DETAIL = {
    "invalid_coordinates": "ra/dec missing, non-numeric or out of range; fix the catalog row",
    "invalid_redshift": "z missing, non-positive or above 5; fix the catalog row",
    "duplicate_id": "target id seen earlier in the catalog; ids must be unique",
    "outside_footprint": "position lies outside targets.footprint; widen the footprint or drop the row",
}


@dataclass
class RunSummary:
    url: str
    rows: int = 0
    quarantined: int = 0
    shards: int = 0
    shards_run: int = 0
    seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    already_complete: bool = False

    def text(self) -> str:
        if self.already_complete:
            return f"catalog already complete at {self.url} (nothing to do)"
        lines = [
            f"catalog: {self.url}",
            f"  {self.rows} targets weighed, {self.quarantined} quarantined, "
            f"{self.shards_run}/{self.shards} shards run in {self.seconds:.1f} s",
        ]
        lines += [f"  quarantine {reason}: {n}" for reason, n in self.reasons.most_common()]
        lines.append(f'  query it: survey-mass query {self.url} "SELECT count(*) FROM catalog"')
        return "\n".join(lines)


def run_job(spec: JobSpec, client=None, progress: bool = True) -> RunSummary:
    """Run (or resume) a job; ``client`` is a distributed Client, else the job's cluster is started."""
    from survey_mass.cluster import open_client
    from survey_mass.infer.plugin import EnsemblePlugin

    start = time.perf_counter()
    layout = CatalogLayout(spec.output.url)
    paths = model_paths(spec)
    check_models(paths)
    jhash = job_hash(spec, paths)
    done = done_shards(layout, jhash)
    summary = RunSummary(url=spec.output.url)
    if is_complete(layout):
        summary.already_complete = True
        return summary
    order, shards = plan_shards(spec)
    todo = [s for s in shards if s.pixel not in done]
    summary.shards, summary.shards_run = len(shards), len(todo)
    if todo:
        with open_client(spec.cluster, client) as c:
            try:
                c.register_plugin(
                    EnsemblePlugin(
                        [p for k, p in paths.items() if k != JOINT], spec.cluster.threads_per_worker
                    )
                )
            except Exception as err:  # e.g. Keras safe_mode refusing a member
                raise UserError(
                    f"workers could not load the models {sorted(paths.values())}: "
                    f"{type(err).__name__}: {err}"
                ) from err
            from distributed import as_completed

            def submit(shard: Shard):
                return c.submit(
                    process_shard,
                    spec,
                    shard,
                    paths,
                    jhash,
                    key=f"shard-{shard.order}-{shard.pixel}-{jhash}",
                    retries=2,
                    pure=False,
                )

            # a bounded window of shards in flight, topped up as they finish: the scheduler and
            # this client hold a few tasks per worker thread, not one per shard of the footprint
            waiting = iter(todo)
            running = as_completed()
            in_flight, target, asked = 0, MIN_IN_FLIGHT, -1.0

            def top_up() -> None:
                nonlocal in_flight, target, asked
                if time.monotonic() - asked > 1.0:  # workers come and go: ask once a second
                    threads = sum(c.nthreads().values())
                    target, asked = (
                        max(MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD * threads),
                        time.monotonic(),
                    )
                while in_flight < target and (shard := next(waiting, None)) is not None:
                    running.add(submit(shard))
                    in_flight += 1

            errors = []
            bar = tqdm(
                total=len(todo), desc=f"{spec.name}: shards", unit="shard", disable=not progress
            )
            top_up()
            for future in running:
                in_flight -= 1
                if future.status == "error":
                    errors.append((future.key, future.exception()))
                else:
                    marker = future.result()
                    done[marker["pixel"]] = marker
                future.release()
                top_up()
                bar.update(1)
            bar.close()
            if errors:
                raise UserError(
                    f"{len(errors)} shard(s) failed, first {errors[0][0]}: {errors[0][1]!r}; "
                    "re-run the same command to retry only those shards"
                )
    provenance = {
        "job": spec.model_dump(mode="json"),
        "job_hash": jhash,
        "code_version": __version__,
        "models": {
            inst: {"path": p, "members": [m["sha256"] for m in read_manifest(p)["members"]]}
            for inst, p in paths.items()
        },
        "combination": (
            entry_version(read_manifest(paths[JOINT])) if JOINT in paths else "inverse-variance"
        ),
        "order": order,
        "shards": len(shards),
    }
    finalize(layout, order, sorted(done), spec.instruments, provenance)
    summary.rows = sum(m["rows"] for m in done.values())
    summary.quarantined = sum(m["quarantined"] for m in done.values())
    summary.reasons = quarantine_reasons(layout)
    summary.seconds = time.perf_counter() - start
    return summary


def quarantine_reasons(layout: CatalogLayout) -> Counter:
    import pyarrow.dataset as ds

    fs = layout.fs
    files = fs.glob(f"{layout.root}/quarantine/**/*.parquet")
    if not files:
        return Counter()
    table = ds.dataset(files, filesystem=fs, format="parquet").to_table(columns=["reason"])
    return Counter(table.column("reason").to_pylist())
