"""The X-ray CNN of Ntampaka et al. 2019: 58,437 trainable parameters on 128x128 photon images."""

from __future__ import annotations

import keras
from keras import layers

from survey_mass.constants import MODEL_INPUT_SHAPE

PAPER_PARAMETERS = 58_437


def build_xray_cnn(
    input_shape: tuple[int, int, int] = MODEL_INPUT_SHAPE["xray"], mean_log_mass: float = 14.3
) -> keras.Model:
    """conv16-pool-conv32-pool-conv64-pool-GAP-drop-200-drop-100-20-1, ReLU, output log10 M500.

    The output bias starts at ``mean_log_mass`` so training begins at the sample mean; it adds no
    parameter to the paper's count.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, filters in enumerate((16, 32, 64), start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.1, name="drop1")(x)
    x = layers.Dense(200, activation="relu", name="dense200")(x)
    x = layers.Dropout(0.1, name="drop2")(x)
    x = layers.Dense(100, activation="relu", name="dense100")(x)
    x = layers.Dense(20, activation="relu", name="dense20")(x)
    outputs = layers.Dense(
        1, name="log10_m500", bias_initializer=keras.initializers.Constant(mean_log_mass)
    )(x)
    return keras.Model(inputs, outputs, name="xray_cnn")
