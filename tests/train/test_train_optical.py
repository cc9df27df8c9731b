"""Optical: ugriz preprocessing, and the two-step model (band classifier, then a frozen-feature
regressor on a small labelled subset) trained into a zoo entry that the generic ensemble runs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from survey_mass.infer.ensemble import FoldEnsemble
from survey_mass.mock.source import MockSource
from survey_mass.mock.universe import UniverseSpec
from survey_mass.models.optical import EXTRACTOR_NAME, PER_BAND_LAYER
from survey_mass.preprocess.optical import preprocess_optical
from survey_mass.sources.base import Target
from survey_mass.train.data import training_clusters, training_inputs
from survey_mass.train.optical import single_bands

OPTICAL_SETTINGS = """
labelled_fraction = 0.75
classifier_epochs = 8
classifier_learning_rate = 2e-3
classifier_holdout = 0.3
filters = [4, 8, 16]
hidden = [8]
dropout = [0.0]
"""


@pytest.fixture(scope="module")
def entry(tiny_training, tmp_path_factory):
    training = tiny_training("optical", n_clusters=60, z_max=0.4, settings=OPTICAL_SETTINGS)
    _, out, manifest = training.run(tmp_path_factory.mktemp("optical"))
    return out, manifest


@pytest.fixture(scope="module")
def unseen():
    """Preprocessed cubes of clusters from another universe, and their truth."""
    spec = UniverseSpec(seed=6, log10_m500_min=14.0, z_max=0.4)
    truth = training_clusters(spec, 12)
    return training_inputs(spec, truth, "optical", progress=False)


def test_bands_share_one_noise_level_and_flux_scales_with_distance():
    spec = UniverseSpec(seed=5, log10_m500_min=14.0, z_max=0.6)
    truth = training_clusters(spec, 40)
    source = MockSource(spec)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in truth.itertuples()]
    cutouts = list(source.cutouts(targets, "optical"))
    x = np.asarray(preprocess_optical(cutouts, np).inputs)
    assert x.shape == (40, 128, 128, 5) and x.dtype == np.float32
    noise = 1.4826 * np.median(np.abs(x - np.median(x, axis=(1, 2), keepdims=True)), axis=(1, 2))
    # one noise level for the five bands of a cutout (so the band is not told by its noise) ...
    assert (noise.max(axis=1) / noise.min(axis=1) < 1.3).all()
    # ... that grows with distance: fluxes are scaled to z_ref = 0.3 as D_L^2
    near, far = truth.z.to_numpy() < 0.2, truth.z.to_numpy() > 0.45
    assert near.any() and far.any()
    assert noise[near].mean() < 0.5 < 1.0 < noise[far].mean()
    # a real mosaic has no SKYSIG keywords: the nominal SDSS depth noise gives the same scaling
    for c in cutouts:
        for band in "UGRIZ":
            del c.hdul[0].header[f"SKYSIG_{band}"]
    np.testing.assert_allclose(np.asarray(preprocess_optical(cutouts, np).inputs), x, atol=1e-3)


def test_single_band_images_keep_their_band_label():
    cubes = np.arange(2 * 4 * 4 * 5, dtype=np.float32).reshape(2, 4, 4, 5)
    singles, bands = single_bands(cubes)
    assert singles.shape == (10, 4, 4, 1) and bands.tolist() == [0, 1, 2, 3, 4] * 2
    np.testing.assert_array_equal(singles[7, ..., 0], cubes[1, ..., 2])


def test_band_classifier_beats_chance_on_unseen_clusters(entry, unseen):
    out, manifest = entry
    step1 = manifest["band_classifier"]
    assert step1["held_out_accuracy"] > 0.3 and step1["chance"] == 0.2
    classifier = keras.models.load_model(out / step1["file"], safe_mode=True, compile=False)
    singles, bands = single_bands(unseen[0])
    accuracy = np.mean(classifier.predict(singles, verbose=0).argmax(axis=1) == bands)
    assert accuracy > 0.3  # 60 images: chance (0.2) is 2 sigma below


def test_regressors_run_the_classifiers_features_frozen(entry):
    out, manifest = entry
    classifier = keras.models.load_model(
        out / manifest["band_classifier"]["file"], safe_mode=True, compile=False
    )
    reference = classifier.get_layer(EXTRACTOR_NAME).get_weights()
    for m in manifest["members"]:
        model = keras.models.load_model(out / m["file"], safe_mode=True, compile=False)
        inner = model.get_layer(PER_BAND_LAYER).layer
        assert not inner.trainable
        for got, want in zip(inner.get_weights(), reference, strict=True):
            np.testing.assert_array_equal(got, want)
        trainable = {w.path.split("/")[0] for w in model.trainable_weights}
        assert trainable and all(name.startswith(("mass_", "log10_m500")) for name in trainable)


def test_step_two_uses_only_the_labelled_subset(entry):
    out, manifest = entry
    training = manifest["training"]
    assert training["n_clusters"] == 60 and training["n_labelled"] == 45
    tested = [
        t
        for m in manifest["members"]
        for t in json.loads((out / m["file"]).with_suffix(".json").read_text())["test_ids"]
    ]
    assert len(tested) == len(set(tested)) == 45 == manifest["held_out"]["n"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["baseline"] == "richness count" and metrics["overall"]["cnn"]["n"] == 45


def test_entry_weighs_clusters_in_its_redshift_range_only(entry, unseen):
    out, manifest = entry
    assert manifest["combine"] == "by_z_bin" and manifest["preprocessing"] == "optical-v1"
    assert all(m["z_bin"] == [0.0, 0.4] for m in manifest["members"])
    images, truth = unseen
    z = truth.z.to_numpy().copy()
    z[0] = 0.7  # beyond the training range: no mass rather than an extrapolation
    pred = FoldEnsemble(out).predict(images, z=z)
    assert np.isnan(pred.log10_m500[0])
    assert np.isfinite(pred.log10_m500[1:]).all() and (pred.sigma[1:] > 0).all()
