"""Which zoo a job gets: the entries of its mock physics unless it names them, and never a
calibration map fitted on other physics."""

from __future__ import annotations

import pytest

from survey_mass.errors import UserError
from survey_mass.spec.job import ZOO_FOR_PHYSICS, JobSpec, ModelsSpec
from survey_mass.zoo.registry import (
    ModelSet,
    ZooEntry,
    calibrated_physics,
    refuse_other_physics,
    resolve_models,
)

CONE = {"footprint": {"kind": "cone", "ra": 150.0, "dec": 2.0, "radius_deg": 0.5}}


def job(**fields) -> JobSpec:
    return JobSpec.model_validate(
        {"name": "t", "targets": CONE, "output": {"url": "unused"}, **fields}
    )


def test_unnamed_models_follow_the_mock_physics_and_named_ones_stay():
    assert job().models.xray == ZOO_FOR_PHYSICS["v1"]["xray"]
    v2 = job(source={"mock": {"physics": "v2"}})
    assert [v2.models.xray, v2.models.sz, v2.models.optical] == list(ZOO_FOR_PHYSICS["v2"].values())
    mixed = job(source={"mock": {"physics": "v2"}}, models={"sz": "my-sz"})
    assert mixed.models.sz == "my-sz" and mixed.models.xray == "xray-v2"
    real = job(source={"kind": "real"}, targets={"catalog": "targets.csv"})
    assert real.models.xray == ModelsSpec().xray == "xray-v2"  # real data: the realistic zoo


def entry(kind: str, universe: dict | None) -> ZooEntry:
    manifest = {"ensemble": f"{kind}-x", "members": [{"sha256": "0" * 64}]}
    if universe is not None:
        manifest["calibration_map"] = {"universe": universe}
    return ZooEntry(kind, "unused", manifest)


def test_a_calibration_map_is_refused_on_another_physics_with_the_fix_named():
    v1_map = entry("xray", {"seed": 6160})  # a v1 universe leaves out the physics key
    assert calibrated_physics(v1_map) == "v1"
    assert calibrated_physics(entry("xray", None)) is None
    refuse_other_physics(ModelSet({"xray": v1_map}), "v1")
    refuse_other_physics(ModelSet({"xray": entry("xray", None)}), "v2")  # no map: nothing claimed
    with pytest.raises(UserError, match=r"calibrated for mock physics v1.*models.calibrated"):
        refuse_other_physics(ModelSet({"xray": v1_map}), "v2")


def test_auto_joint_is_the_shipped_entry_fitted_on_the_jobs_ensembles():
    v1 = resolve_models(ModelsSpec().for_physics("v1"), ["xray", "sz", "optical"])
    assert v1.joint is not None and v1.joint.version.startswith("joint-v1@")
    mixed = resolve_models(ModelsSpec(xray="xray-v1", sz="sz-v1"), ["xray", "sz", "optical"])
    assert mixed.joint is None  # no shipped joint entry was fitted on v1 X-ray with v2 optical


def test_refitting_a_calibration_map_changes_only_the_calibrated_jobs():
    from survey_mass.runner.provenance import job_hash

    before = ModelSet({"xray": entry("xray", {"seed": 1})})
    refit = ModelSet({"xray": entry("xray", {"seed": 1})})
    refit.ensembles["xray"].manifest["calibration_map"]["sha256"] = "1" * 64
    before.ensembles["xray"].manifest["calibration_map"]["sha256"] = "2" * 64
    raw = job(models={"calibrated": False})
    assert job_hash(raw, before) == job_hash(raw, refit)  # the raw outputs never read the map
    assert job_hash(job(), before) != job_hash(job(), refit)
