"""The regression head and losses every mass model shares (X-ray, SZ, optical).

A head maps a feature vector to log10 M500 [Msun] (column 0) and, with ``aleatoric=True``, a
second column: the log variance of log10 M, trained with a Gaussian negative log-likelihood so
the model says how sure it is per cluster. Both losses read column 0 for the mass, so one model
can be warm-started with log-MSE and fine-tuned with the NLL without changing its outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

#: Initial log variance of the aleatoric column: sigma = 0.1 dex, the scale of the papers' scatter.
INITIAL_LOG_VARIANCE = 2.0 * math.log(0.1)


def regression_head(
    features,
    *,
    hidden: Sequence[int] = (200, 100, 20),
    dropout: Sequence[float] = (0.1, 0.1, 0.0),
    mean_log_mass: float = 14.3,
    aleatoric: bool = False,
    prefix: str = "head",
):
    """Dense ReLU layers on ``features``, then the output tensor ((N, 1), or (N, 2) if aleatoric).

    ``dropout[i]`` is applied before dense layer ``i``; the defaults are the X-ray paper's head
    (drop 0.1 - 200 - drop 0.1 - 100 - 20 - 1). The mass bias starts at ``mean_log_mass`` so
    training starts at the sample mean. ``prefix`` names the hidden layers (keep it distinct from a
    backbone's names); the outputs are always ``log10_m500`` and ``log_variance``.
    """
    if len(dropout) != len(hidden):
        raise ValueError(
            f"dropout {tuple(dropout)} needs one rate per hidden layer {tuple(hidden)}"
        )
    x = features
    for i, (width, rate) in enumerate(zip(hidden, dropout, strict=True), start=1):
        if rate > 0:
            x = layers.Dropout(rate, name=f"{prefix}_drop{i}")(x)
        x = layers.Dense(width, activation="relu", name=f"{prefix}_dense{i}")(x)
    mass = layers.Dense(
        1, name="log10_m500", bias_initializer=keras.initializers.Constant(mean_log_mass)
    )(x)
    if not aleatoric:
        return mass
    log_variance = layers.Dense(
        1,
        name="log_variance",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(INITIAL_LOG_VARIANCE),
    )(x)
    return layers.Concatenate(name="mass_and_log_variance")([mass, log_variance])


def _target(y_true, y_pred):
    """log10 M_true as a (N,) tensor of y_pred's dtype, from (N,) or (N, 1) targets."""
    return ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype)


@keras.saving.register_keras_serializable(package="survey_mass")
def log_mse(y_true, y_pred):
    """(log10 M_true - log10 M_pred)^2 per sample, the SZ and X-ray papers' loss (Keras means it)."""
    return ops.square(_target(y_true, y_pred) - y_pred[:, 0])


@keras.saving.register_keras_serializable(package="survey_mass")
def gaussian_nll(y_true, y_pred):
    """Gaussian negative log-likelihood of log10 M_true given (mean, log variance) per sample.

    The log variance is clipped to [-20, 10] so one outlier cannot drive it to inf or 0.
    """
    mean, log_var = y_pred[:, 0], ops.clip(y_pred[:, 1], -20.0, 10.0)
    residual = _target(y_true, y_pred) - mean
    return 0.5 * (ops.exp(-log_var) * ops.square(residual) + log_var + math.log(2.0 * math.pi))


def split_outputs(y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(log10 M, aleatoric sigma in dex or None) from a head's (N, 1) or (N, 2) predictions."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim != 2 or y_pred.shape[1] not in (1, 2):
        raise ValueError(f"head predictions must be (N, 1) or (N, 2), got {y_pred.shape}")
    sigma = np.exp(0.5 * y_pred[:, 1]) if y_pred.shape[1] == 2 else None
    return y_pred[:, 0], sigma
