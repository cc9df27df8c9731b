"""The GPU path (CuPy preprocessing resident on the device, DLPack hand-off to TensorFlow, memory
growth) must give the CPU path's catalog; and what makes device batches safe holds on the CPU too:
a sample's input and mass never depend on the batch it rides in.

The GPU tests run only where CuPy sees a GPU; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from survey_mass.infer.ensemble import _to_framework, load_ensemble
from survey_mass.mock.source import MockSource
from survey_mass.mock.universe import base_pixel_clusters
from survey_mass.preprocess.xray import preprocess_xray
from survey_mass.sources.base import Target
from survey_mass.spec.universe import UniverseSpec
from survey_mass.xp import array_module
from survey_mass.zoo.registry import SHIPPED_ZOO


def _gpu():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:
        return None


cupy = _gpu()
requires_gpu = pytest.mark.skipif(
    cupy is None, reason="no CuPy with a usable GPU here: the GPU path is not exercised"
)
SPEC = UniverseSpec(seed=5, density_scale=10.0)


@pytest.fixture(scope="module")
def cutouts():
    frames, pixel = [], 90000
    while sum(map(len, frames)) < 24:
        frames.append(base_pixel_clusters(SPEC, pixel))
        pixel += 1
    rows = pd.concat(frames).head(24)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in rows.itertuples()]
    return list(MockSource(SPEC).cutouts(targets, "xray"))


@pytest.fixture(scope="module")
def ensemble():
    return load_ensemble(SHIPPED_ZOO / "xray-v1")


def test_device_cpu_is_numpy_and_auto_falls_back_without_a_gpu():
    assert array_module("cpu") is np
    if cupy is None:
        assert array_module("auto") is np
        with pytest.raises(RuntimeError, match="device = 'gpu' asked for, but CuPy cannot"):
            array_module("gpu")


def test_a_batch_prepares_each_cutout_exactly_as_alone(cutouts):
    together = preprocess_xray(cutouts, np)
    alone = [preprocess_xray([c], np).inputs for c in cutouts]
    assert together.inputs.dtype == np.float32 and together.inputs.flags.c_contiguous
    np.testing.assert_array_equal(together.inputs, np.concatenate(alone))


def test_a_mass_does_not_depend_on_the_batch_it_rides_in(cutouts, ensemble):
    inputs = preprocess_xray(cutouts, np).inputs
    z = np.array([c.target.z for c in cutouts])
    whole = ensemble.predict(inputs, z=z, batch_size=64).log10_m500
    pieces = ensemble.predict(inputs, z=z, batch_size=5).log10_m500
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-5)


def test_numpy_batches_reach_the_model_without_a_copy():
    batch = np.zeros((2, 128, 128, 1), np.float32)
    assert _to_framework(batch) is batch


# --- on a GPU -------------------------------------------------------------------------------------


@requires_gpu
def test_gpu_preprocessing_stays_on_the_device_and_matches_the_cpu(cutouts):
    gpu = preprocess_xray(cutouts, cupy)
    cpu = preprocess_xray(cutouts, np)
    assert isinstance(gpu.inputs, cupy.ndarray)
    assert [c.target.target_id for c in gpu.cutouts] == [c.target.target_id for c in cpu.cutouts]
    np.testing.assert_allclose(cupy.asnumpy(gpu.inputs), cpu.inputs, rtol=1e-5, atol=1e-5)


@requires_gpu
def test_dlpack_hands_the_device_batch_to_tensorflow_without_a_host_copy():
    batch = cupy.zeros((2, 8, 8, 1), dtype=cupy.float32)
    tensor = _to_framework(batch)
    assert "GPU" in tensor.device
    batch[0, 0, 0, 0] = 42.0  # shared memory: the tensor sees the write
    cupy.cuda.get_current_stream().synchronize()
    assert float(tensor.numpy()[0, 0, 0, 0]) == 42.0


@requires_gpu
def test_gpu_masses_are_the_cpu_masses(cutouts, ensemble):
    z = np.array([c.target.z for c in cutouts])
    cpu = ensemble.predict(preprocess_xray(cutouts, np).inputs, z=z, xp=np)
    gpu = ensemble.predict(preprocess_xray(cutouts, cupy).inputs, z=z, xp=cupy)
    np.testing.assert_allclose(gpu.log10_m500, cpu.log10_m500, atol=1e-4)
    np.testing.assert_allclose(gpu.sigma, cpu.sigma, atol=1e-4)


@requires_gpu
def test_the_worker_plugin_turns_on_tensorflow_memory_growth():
    code = (
        "from survey_mass.runner.worker_plugin import configure_tensorflow\n"
        "configure_tensorflow(1)\n"
        "import tensorflow as tf\n"
        "gpus = tf.config.list_physical_devices('GPU')\n"
        "assert gpus and all(tf.config.experimental.get_memory_growth(g) for g in gpus)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
