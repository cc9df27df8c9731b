"""What a catalog records about how it was made, and the identities that decide resume and update.

``job_hash`` is the recipe (spec and model bytes, not the targets): rows it made can be reused by
any version of the same recipe. A version's ``identity`` adds the input fingerprint: a version is
complete for a job only when both match.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from survey_mass import __version__
from survey_mass.catalog.schema import catalog_schema
from survey_mass.spec.job import JobSpec
from survey_mass.zoo.registry import ModelSet


class ModelRecord(BaseModel):
    path: str
    members: list[str]  # sha256 of each member file


class Provenance(BaseModel):
    """``provenance.json`` and the ``survey_mass.provenance`` schema metadata of a catalog."""

    job: dict
    job_hash: str
    code_version: str
    models: dict[str, ModelRecord]
    combination: str  # the joint entry's version, or "inverse-variance"
    order: int
    shards: int
    version: str  # this catalog version's folder name
    parent: str | None  # the version it was updated from
    inputs: dict  # the input fingerprint (targets.fingerprint)
    identity: str


#: spec keys that change where or how a job runs, not what it writes
NOT_RECIPE = ("cluster", "output", "batch_size", "confirm_above_shards", "report", "mode")


def recipe(spec: JobSpec) -> dict:
    """The spec minus where it runs and minus its targets (those are the version's inputs)."""
    return spec.model_dump(mode="json", exclude={*NOT_RECIPE, "targets"})


def columns(spec: JobSpec) -> list[str]:
    """The catalog's columns: rows written by a survey-mass with other columns are not this
    job's (reusing them would leave a new column empty or fail the write)."""
    return catalog_schema(list(spec.instruments)).names


def job_hash(spec: JobSpec, models: ModelSet) -> str:
    """What makes two runs weigh a target alike: the recipe, the model bytes and the columns."""
    blob = json.dumps(
        {
            "spec": recipe(spec),
            "models": models.fingerprint(spec.models.calibrated),
            "columns": columns(spec),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def identity(jhash: str, inputs: dict) -> str:
    """A catalog version's identity: its recipe and its inputs."""
    blob = json.dumps({"job_hash": jhash, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def identity_record(spec: JobSpec, models: ModelSet, jhash: str, inputs: dict, order: int, parent):
    """``_identity.json`` of a version: enough to say later what changed since it."""
    return {
        "identity": identity(jhash, inputs),
        "job_hash": jhash,
        "spec": recipe(spec),
        "models": models.fingerprint(spec.models.calibrated),
        "columns": columns(spec),
        "inputs": inputs,
        "order": order,
        "parent": parent,
    }


def provenance(spec: JobSpec, models: ModelSet, record: dict, version: str, shards: int):
    return Provenance(
        job=spec.model_dump(mode="json"),
        job_hash=record["job_hash"],
        code_version=__version__,
        models={
            kind: ModelRecord(path=e.path, members=e.member_sha256)
            for kind, e in models.entries.items()
        },
        combination=models.combination,
        order=record["order"],
        shards=shards,
        version=version,
        parent=record["parent"],
        inputs=record["inputs"],
        identity=record["identity"],
    )
