"""The X-ray CNN of Ntampaka et al. 2019: 58,437 trainable parameters on 128x128 photon images."""

from __future__ import annotations

import keras
from keras import layers

from survey_mass.constants import MODEL_INPUT_SHAPE
from survey_mass.models.blocks import conv_blocks
from survey_mass.models.heads import regression_head

PAPER_PARAMETERS = 58_437


def build_xray_cnn(
    input_shape: tuple[int, int, int] = MODEL_INPUT_SHAPE["xray"],
    mean_log_mass: float = 14.3,
    aleatoric: bool = False,
) -> keras.Model:
    """conv16-pool-conv32-pool-conv64-pool-GAP-drop-200-drop-100-20-1, ReLU, output log10 M500.

    With ``aleatoric`` a second output, the log variance of log10 M (Gaussian NLL), adds 21
    parameters to the paper's 58,437.
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_blocks(inputs, (16, 32, 64))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = regression_head(x, mean_log_mass=mean_log_mass, aleatoric=aleatoric)
    return keras.Model(inputs, outputs, name="xray_cnn")
