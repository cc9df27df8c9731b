"""What a catalog records about how it was made, and the job identity that decides resume."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from survey_mass import __version__
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


def job_hash(spec: JobSpec, models: ModelSet) -> str:
    """What makes two runs write the same catalog: the job minus where it runs, and the model bytes."""
    relevant = spec.model_dump(
        mode="json",
        exclude={
            "cluster": True,
            "output": True,
            "batch_size": True,
            "confirm_above_shards": True,
            "report": True,
        },
    )
    blob = json.dumps({"spec": relevant, "models": models.fingerprint()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def provenance(spec: JobSpec, models: ModelSet, jhash: str, order: int, shards: int) -> Provenance:
    return Provenance(
        job=spec.model_dump(mode="json"),
        job_hash=jhash,
        code_version=__version__,
        models={
            kind: ModelRecord(path=e.path, members=e.member_sha256)
            for kind, e in models.entries.items()
        },
        combination=models.combination,
        order=order,
        shards=shards,
    )
