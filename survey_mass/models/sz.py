"""SZ (Compton-y) mass models: one network per redshift bin, as in de Andres et al. 2022.

Two architectures: the exact DeepPlanck CNN (so the published weights load into it), and a
VGG-like CNN of our own whose width is a parameter (narrow for CPU tests, wide on GPUs), with the
shared regression head and an optional aleatoric log-variance column.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from survey_mass import constants
from survey_mass.models.blocks import conv_blocks
from survey_mass.models.heads import regression_head

SZ_INPUT_SHAPE = (constants.SZ_GRID, constants.SZ_GRID, 1)


def z_bin_index(
    z: np.ndarray, bins: Sequence[tuple[float, float]] = constants.Z_BINS
) -> np.ndarray:
    """Index of the half-open bin (lo, hi] holding each redshift; a z in no bin is an error."""
    z = np.asarray(z, dtype=np.float64)
    index = np.full(z.shape, -1, dtype=np.int64)
    for i, (lo, hi) in enumerate(bins):
        index[(z > lo) & (z <= hi)] = i
    outside = np.flatnonzero(index.ravel() < 0)
    if outside.size:
        shown = ", ".join(f"z[{i}]={float(z.ravel()[i])!r}" for i in outside[:5])
        raise ValueError(
            f"{outside.size} redshift(s) outside the model bins (lo, hi] from {bins[0][0]} to "
            f"{bins[-1][1]}: {shown}; drop those targets or use a model trained there"
        )
    return index


def build_deepplanck_cnn(
    input_shape: tuple[int, int, int] = SZ_INPUT_SHAPE, name: str = "deepplanck_cnn"
) -> keras.Model:
    """The DeepPlanck network: the X-ray paper's CNN with unpadded ('valid') 3x3 convolutions.

    conv16-pool-conv32-pool-conv64-pool-GAP-drop0.1-200-drop0.1-100-20-1, ReLU; output log10 M500.
    Kept exactly so the published per-bin weights (``deepplanck.py``) fit it layer for layer.
    """
    inputs = keras.Input(shape=input_shape, name="y_map")
    x = conv_blocks(inputs, (16, 32, 64), padding="valid")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = regression_head(x, hidden=(200, 100, 20), dropout=(0.1, 0.1, 0.0))
    return keras.Model(inputs, outputs, name=name)


def build_sz_vgg(
    input_shape: tuple[int, int, int] = SZ_INPUT_SHAPE,
    *,
    filters: Sequence[int] = (8, 16, 32, 64),
    hidden: Sequence[int] = (64, 16),
    dropout: Sequence[float] = (0.1, 0.0),
    aleatoric: bool = False,
    mean_log_mass: float = 14.5,
) -> keras.Model:
    """VGG-like CNN: per entry of ``filters`` a block of two 3x3 'same' convs + 2x2 max pool.

    The defaults (about 80k parameters) train on two CPU cores in minutes; ``filters=(32, 64, 128,
    256)`` is the full-width GPU model. Output (N, 1) log10 M500 [Msun], or (N, 2) with the
    log variance of log10 M when ``aleatoric`` (train with ``heads.gaussian_nll``).
    """
    side = min(input_shape[:2])
    if side < 2 ** len(filters):
        raise ValueError(
            f"{len(filters)} pooling blocks need images of at least {2 ** len(filters)} pixels, "
            f"got input_shape {input_shape}: use fewer filters entries"
        )
    inputs = keras.Input(shape=input_shape, name="y_map")
    x = conv_blocks(
        inputs, filters, convs=2, conv_name="block{block}_conv{conv}", pool_name="block{block}_pool"
    )
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = regression_head(
        x, hidden=hidden, dropout=dropout, mean_log_mass=mean_log_mass, aleatoric=aleatoric
    )
    return keras.Model(inputs, outputs, name="sz_vgg")
