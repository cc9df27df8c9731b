"""SZ training: one model family per redshift bin, best of N trainings, routed and standardised."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from survey_mass.cli import main
from survey_mass.constants import Z_BINS
from survey_mass.infer.ensemble import FoldEnsemble
from survey_mass.mock.universe import UniverseSpec, clusters_per_deg2
from survey_mass.train.data import training_clusters, training_inputs
from survey_mass.train.sz import bin_universe, choose
from survey_mass.zoo.manifest import sha256_file

SZ_SETTINGS = """
trainings = 2
filters = [4, 8]
hidden = [8]
dropout = [0.0]
"""


@pytest.fixture(scope="module")
def training(tiny_training):
    return tiny_training("sz", n_clusters=30, z_max=0.2, settings=SZ_SETTINGS)


@pytest.fixture(scope="module")
def entry(training, tmp_path_factory):
    return training.run(tmp_path_factory.mktemp("sz"))


def test_one_member_per_fold_and_bin_routed_by_redshift(entry):
    _, out, manifest = entry
    assert manifest["combine"] == "by_z_bin" and manifest["preprocessing"] == "sz-y-v1"
    bins = [tuple(m["z_bin"]) for m in manifest["members"]]
    assert bins == [Z_BINS[0]] * 3 + [Z_BINS[1]] * 3  # z_max 0.2 reaches two bins
    for m in manifest["members"]:
        assert m["training"] in (0, 1) and m["test"]["n"] == 10 and m["scatter_dex"] > 0
        assert m["universe"]["seed"] == 5 and m["n_clusters"] == 30
    assert manifest["held_out"]["n"] == 60 and manifest["scatter_dex"] > 0
    assert manifest["metrics"]["sha256"] == sha256_file(out / "metrics.json")
    assert not list(out.parent.glob(".*staging"))  # the staging folder was swapped in


def test_each_bin_is_standardised_with_its_own_maps(entry):
    spec, out, manifest = entry
    std = manifest["standardisation"]
    assert std["mu"][2:] == [None, None] and std["sigma"][2:] == [None, None]
    universe = UniverseSpec(seed=5, log10_m500_min=14.0, z_max=0.2)
    for i in (0, 1):
        member = next(m for m in manifest["members"] if tuple(m["z_bin"]) == Z_BINS[i])
        bin_spec = UniverseSpec(**member["universe"])
        assert bin_spec == bin_universe(universe, Z_BINS[i], 30, 30.0)
        truth = training_clusters(bin_spec, 30)
        assert ((truth.z > Z_BINS[i][0]) & (truth.z <= Z_BINS[i][1])).all()
        images, _ = training_inputs(bin_spec, truth, "sz", progress=False)
        assert std["mu"][i] == pytest.approx(images.astype(np.float64).mean(), rel=1e-6)
        assert std["sigma"][i] == pytest.approx(images.astype(np.float64).std(), rel=1e-6)
    assert std["sigma"][0] != std["sigma"][1]


def test_fold_ensemble_routes_targets_to_their_bin_and_standardises(entry):
    _, out, manifest = entry
    ensemble = FoldEnsemble(out)
    rng = np.random.default_rng(0)
    y = (2e-6 * rng.standard_normal((3, 96, 96, 1))).astype(np.float32)
    pred = ensemble.predict(y, z=np.array([0.05, 0.15, 0.5]))
    assert np.isnan(pred.log10_m500[2])  # no member serves 0.4 < z <= 1
    std = manifest["standardisation"]
    for row, i in ((0, 0), (1, 1)):
        x = ((y[row : row + 1] - std["mu"][i]) / std["sigma"][i]).astype(np.float32)
        by_hand = [
            keras.models.load_model(out / m["file"], safe_mode=True, compile=False)(x)[0, 0]
            for m in manifest["members"]
            if tuple(m["z_bin"]) == Z_BINS[i]
        ]
        assert pred.log10_m500[row] == pytest.approx(float(np.mean(by_hand)), abs=1e-5)


def test_each_fold_keeps_the_training_chosen_on_its_validation_fold(entry):
    _, out, manifest = entry
    work = next((out.parent.parent / "work").glob("sz-tiny-*"))
    for m in manifest["members"]:
        record = json.loads((out / m["file"]).with_suffix(".json").read_text())
        assert len(record["candidates"]) == 2
        assert choose(record["candidates"]) == m["training"]
        bin_index = Z_BINS.index(tuple(m["z_bin"])) + 1
        trained = work / f"bin{bin_index}" / f"t{m['training']}" / f"fold{m['fold']}.keras"
        assert (out / m["file"]).read_bytes() == trained.read_bytes()


def test_choice_prefers_unbiased_then_least_scatter():
    def rec(bias, scatter):
        return {"validation": {"bias": bias, "scatter": scatter}}

    assert choose([rec(0.01, 0.20), rec(-0.015, 0.10), rec(0.05, 0.05)]) == 1
    assert choose([rec(0.08, 0.10), rec(-0.03, 0.30)]) == 1  # none unbiased: least |bias|


def test_bins_get_a_dense_enough_universe():
    universe = UniverseSpec(seed=1, log10_m500_min=14.0)
    low = bin_universe(universe, Z_BINS[0], 300, 30.0)
    assert (low.z_min, low.z_max) == (0.03, 0.1)
    assert clusters_per_deg2(low) * 30.0 >= 300
    with pytest.raises(ValueError):
        bin_universe(UniverseSpec(seed=1, z_min=0.5), Z_BINS[0], 300, 30.0)


def test_evaluate_only_reproduces_the_saved_metrics(entry):
    spec, out, _ = entry
    saved = (out / "metrics.json").read_text()
    assert main(["train", str(spec), "--evaluate-only"]) == 0
    assert (out / "metrics.json").read_text() == saved


def test_new_metrics_are_rehashed_into_the_manifest(entry, tmp_path, monkeypatch):
    import shutil

    from survey_mass.train import evaluate

    _, out, manifest = entry
    copy = tmp_path / "sz-tiny"
    shutil.copytree(out, copy)
    monkeypatch.setattr(evaluate, "MIN_GAUSSIAN_FIT", 10**6)  # no Gaussian fits: other numbers
    summary = evaluate.evaluate_entry(copy)
    assert summary["overall"]["cnn"]["gauss_sigma"] != summary["overall"]["cnn"]["gauss_sigma"]
    rewritten = json.loads((copy / "manifest.json").read_text())
    assert rewritten["metrics"]["sha256"] == sha256_file(copy / "metrics.json")
    assert rewritten["metrics"] != manifest["metrics"]
    assert {k: v for k, v in rewritten.items() if k != "metrics"} == {
        k: v for k, v in manifest.items() if k != "metrics"
    }
    FoldEnsemble(copy)  # members untouched: still pass their hash checks


def test_unknown_sz_setting_is_refused(training, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(training.spec(out=tmp_path / "o", work=tmp_path / "w") + "filterz = [1]\n")
    assert main(["train", str(spec)]) == 2
