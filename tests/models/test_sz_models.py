"""SZ architectures, the shared regression head and its losses."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from survey_mass.models.heads import INITIAL_LOG_VARIANCE, gaussian_nll, log_mse, split_outputs
from survey_mass.models.sz import build_deepplanck_cnn, build_sz_vgg, z_bin_index


def test_deepplanck_cnn_is_the_papers_network_with_valid_convs():
    model = build_deepplanck_cnn()
    assert model.count_params() == 58_437  # the X-ray paper's count: padding adds no parameter
    assert model.get_layer("pool3").output.shape == (None, 10, 10, 64)  # 96-2=94/2=47-2=45/2=22..
    assert model.output.shape == (None, 1)


def test_vgg_default_is_small_and_width_is_configurable():
    small = build_sz_vgg()
    wide = build_sz_vgg(filters=(32, 64, 128, 256))
    assert small.input.shape == (None, 96, 96, 1) and small.output.shape == (None, 1)
    assert small.count_params() < 100_000 < 1_000_000 < wide.count_params()
    assert [layer.name for layer in small.layers[1:4]] == [
        "block1_conv1",
        "block1_conv2",
        "block1_pool",
    ]
    assert small.get_layer("gap").output.shape == (None, 64)
    with pytest.raises(ValueError, match="at least 32 pixels"):
        build_sz_vgg((16, 16, 1), filters=(8, 8, 8, 8, 8))


def test_untrained_vgg_starts_at_the_mean_mass():
    model = build_sz_vgg(mean_log_mass=14.2)
    np.testing.assert_allclose(model.predict(np.zeros((2, 96, 96, 1)), verbose=0), 14.2, atol=1e-6)


def test_nll_head_outputs_mass_and_log_variance_columns():
    model = build_sz_vgg(aleatoric=True, mean_log_mass=14.5)
    assert model.output.shape == (None, 2)
    pred = model.predict(np.random.default_rng(1).normal(size=(3, 96, 96, 1)), verbose=0)
    assert pred.shape == (3, 2)
    mass, sigma = split_outputs(pred)
    assert mass.shape == (3,)
    np.testing.assert_allclose(pred[:, 1], INITIAL_LOG_VARIANCE, rtol=1e-6)  # zero kernel at init
    np.testing.assert_allclose(sigma, 0.1, rtol=1e-5)
    assert split_outputs(pred[:, :1])[1] is None


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_saves_and_loads_with_safe_mode(tmp_path):
    model = build_sz_vgg(aleatoric=True, filters=(4, 8))
    model.compile(optimizer="adam", loss=gaussian_nll)
    x = np.random.default_rng(2).normal(size=(4, 96, 96, 1)).astype(np.float32)
    path = tmp_path / "sz_vgg.keras"
    model.save(path)
    for compile_ in (False, True):  # compile=True needs the registered loss
        loaded = keras.models.load_model(path, safe_mode=True, compile=compile_)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.loss is gaussian_nll


def test_losses_match_their_formulas():
    y_true = np.array([[14.0], [15.0]], np.float32)
    y_pred = np.array([[14.1, math.log(0.04)], [14.8, 0.0]], np.float32)
    np.testing.assert_allclose(log_mse(y_true, y_pred), [0.01, 0.04], rtol=1e-5)
    np.testing.assert_allclose(log_mse(y_true[:, 0], y_pred[:, :1]), [0.01, 0.04], rtol=1e-5)
    expected = [
        0.5 * (r**2 / v + math.log(v) + math.log(2 * math.pi)) for r, v in ((0.1, 0.04), (0.2, 1.0))
    ]
    np.testing.assert_allclose(gaussian_nll(y_true, y_pred), expected, rtol=1e-5)
    # the NLL prefers the variance equal to the squared residual
    nll = [
        float(gaussian_nll(y_true[:1], np.array([[14.1, math.log(v)]], np.float32))[0])
        for v in (0.001, 0.01, 0.1)
    ]
    assert nll[1] < nll[0] and nll[1] < nll[2]


def test_vgg_trains_with_the_nll():
    """Targets scattered by 0.3 dex: the NLL falls and the predicted sigma grows from 0.1."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 96, 96, 1)).astype(np.float32)
    y = (14.5 + 0.3 * rng.normal(size=(16, 1))).astype(np.float32)
    model = build_sz_vgg(aleatoric=True, filters=(4, 8))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=gaussian_nll)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before - 0.5
    assert split_outputs(model.predict(x, verbose=0))[1].mean() > 0.1


def test_z_bins_are_upper_closed():
    assert z_bin_index([0.05, 0.1, 0.1000001, 0.2, 0.4, 1.0]).tolist() == [0, 0, 1, 1, 2, 3]
    with pytest.raises(ValueError, match=r"2 redshift\(s\).*z\[0\]=0\.0.*z\[2\]=1\.5"):
        z_bin_index([0.0, 0.5, 1.5])
