"""`survey-mass train`: a fold ensemble with a manifest, resumable, refused when tampered with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from survey_mass.cli import main
from survey_mass.infer.ensemble import FoldEnsemble
from survey_mass.models.xray import PAPER_PARAMETERS, build_xray_cnn
from survey_mass.train.folds import fold_split, mass_sorted_folds
from survey_mass.zoo.manifest import ModelIntegrityError


def test_xray_cnn_has_the_papers_parameter_count():
    assert build_xray_cnn().count_params() == PAPER_PARAMETERS == 58_437


def test_every_instrument_a_training_spec_accepts_has_a_trainer():
    from typing import get_args

    from survey_mass.train import TRAINERS
    from survey_mass.train.spec import TrainSpec

    assert set(TRAINERS) == set(get_args(TrainSpec.model_fields["instrument"].annotation))


def test_folds_are_dealt_by_mass_and_split_train_validation_test():
    rng = np.random.default_rng(0)
    mass = rng.uniform(13.5, 15.0, 103)
    folds = mass_sorted_folds(mass, 10)
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 1
    # each fold spans the mass range: its members' mass ranks are spaced by the number of folds
    for k in range(10):
        assert np.ptp(mass[folds == k]) > 1.2
    train, val, test = fold_split(folds, 3)
    assert set(train) | set(val) | set(test) == set(range(103))
    assert (
        not (set(train) & set(val)) and not (set(train) & set(test)) and not (set(val) & set(test))
    )
    assert set(folds[val]) == {4} and set(folds[test]) == {3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo") / "xray-tiny"
    spec = tmp_path_factory.mktemp("spec") / "train.toml"
    spec.write_text(f"""
[train]
instrument = "xray"
ensemble = "xray-tiny"
out = "{out}"
n_clusters = 60
folds = 3
max_epochs = 2
min_epochs = 1
augmentations_per_epoch = 1
aleatoric = true
nll_epochs = 1
[train.universe]
seed = 5
""")
    assert main(["train", str(spec)]) == 0
    return spec, out


def test_training_writes_members_and_a_manifest_with_metrics(trained):
    _, out = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ensemble"] == "xray-tiny" and manifest["instrument"] == "xray"
    assert [m["fold"] for m in manifest["members"]] == [0, 1, 2]
    for m in manifest["members"]:
        assert len(m["sha256"]) == 64 and m["test"]["n"] == 20
    assert manifest["held_out"]["n"] == 60
    assert manifest["preprocessing"] == "xray-v1"
    calibration = manifest["calibration"]
    assert calibration["kind"] == "aleatoric" and calibration["sigma_scale"] > 0
    assert calibration["n_validation"] == calibration["n_test"] == 60
    assert 0 <= calibration["coverage_68"] <= calibration["coverage_95"] <= 1
    assert manifest["training"]["universe"]["seed"] == 5
    ensemble = FoldEnsemble(out)
    pred = ensemble.predict(np.zeros((2, 128, 128, 1), np.float32))
    assert pred.log10_m500.shape == (2,) and np.isfinite(pred.sigma).all()
    assert (pred.sigma >= pred.spread).all() and (pred.sigma > 0).all()


def test_training_resumes_from_finished_folds(trained):
    spec, out = trained
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("fold*")}
    assert main(["train", str(spec)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("fold*")} == before


def test_a_tampered_member_is_refused(trained, tmp_path):
    import shutil

    _, out = trained
    copy = tmp_path / "tampered"
    shutil.copytree(out, copy)
    data = bytearray((copy / "fold1.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "fold1.keras").write_bytes(data)
    with pytest.raises(ModelIntegrityError, match="fold1.keras"):
        FoldEnsemble(copy)


def test_resuming_with_a_different_spec_is_refused(trained, tmp_path):
    spec, out = trained
    changed = tmp_path / "changed.toml"
    changed.write_text(spec.read_text().replace("max_epochs = 2", "max_epochs = 3"))
    assert main(["train", str(changed)]) == 2  # a UserError, printed without a traceback
