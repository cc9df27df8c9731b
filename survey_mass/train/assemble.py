"""Shared steps of the trainers that build a zoo entry out of fold ensembles (SZ, optical).

Those trainers run ``train_fold_ensemble`` in a work folder (checkpointed, resumable), then copy
the chosen members and their fold records into a staging folder, write ``metrics.json`` and the
manifest there, and only then swap it in for the zoo entry: a half-written entry is never seen.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TypeVar

import tomllib
from pydantic import BaseModel, ValidationError

from survey_mass.errors import JobSpecError, UserError
from survey_mass.spec.job import format_validation_error
from survey_mass.train.spec import TrainSpec
from survey_mass.zoo.manifest import MANIFEST_NAME

Settings = TypeVar("Settings", bound=BaseModel)


def load_settings(path: str | Path, table: str, model: type[Settings]) -> Settings:
    """The job file's ``[table]`` (what an instrument's trainer adds to ``[train]``); defaults if absent."""
    data = tomllib.loads(Path(path).read_text()).get(table, {})
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise JobSpecError(format_validation_error(err, f"{path} [{table}]")) from err


def work_folder(spec: TrainSpec, settings: BaseModel) -> Path:
    """Checkpoint folder keyed by everything that shapes the training, so a change retrains.

    ``train_fold_ensemble`` hashes only the TrainSpec; the instrument's settings (architecture,
    labelled subset...) live here, so they key the folder.
    """
    key = spec.model_dump_json(exclude={"out"}) + settings.model_dump_json(exclude={"work"})
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    root = getattr(settings, "work", None) or "out/train"
    return Path(root) / f"{spec.ensemble}-{digest}"


def copy_member(fold_dir: Path, k: int, staging: Path, name: str, **extra) -> dict:
    """Copy fold ``k`` of a trained fold ensemble as ``name``.keras/.json; returns its record."""
    record = json.loads((fold_dir / f"fold{k}.json").read_text())
    shutil.copyfile(fold_dir / record["file"], staging / f"{name}.keras")
    record.update(file=f"{name}.keras", **extra)
    (staging / f"{name}.json").write_text(json.dumps(record))
    return record


def member_entry(record: dict, **extra) -> dict:
    """A manifest member from a fold record: its metrics and bookkeeping, not the predictions."""
    keep = ("file", "fold", "epochs", "stopped_by_criteria", "n_train", "validation", "test")
    return {**{k: record[k] for k in keep}, **extra}


def check_replaceable(out: Path, ensemble: str) -> None:
    """Refuse (before any training) to replace a folder that is not this ensemble's entry."""
    if out.exists() and any(out.iterdir()):
        manifest = out / MANIFEST_NAME
        owner = json.loads(manifest.read_text()).get("ensemble") if manifest.is_file() else None
        if owner != ensemble:
            raise UserError(
                f"{out} exists and is not the zoo entry {ensemble!r}; point `out` at a new folder"
            )


def entry_folders(spec: TrainSpec, settings: BaseModel) -> tuple[Path, Path]:
    """(zoo entry, work folder) of a training; ``out`` is refused now if it is another entry."""
    out = Path(spec.out)
    check_replaceable(out, spec.ensemble)
    return out, work_folder(spec, settings)


def staging_folder(out: Path) -> Path:
    """An empty folder beside ``out`` to build the entry in."""
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def replace_entry(staging: Path, out: Path) -> Path:
    """Swap the finished staging folder in for ``out`` (stale members of an old entry go)."""
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out
