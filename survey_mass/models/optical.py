"""The two-step optical mass model of Lin et al. 2022 (MNRAS 512, 3885), on SDSS ugriz images.

Step 1 needs no masses: a CNN learns to tell which SDSS band a single-band image was taken in
(a five-way classification on every training cutout), which makes its features respond to the
colours and shapes of galaxies -- red-sequence members are faint in u and bright in i. Step 2,
where labels are scarce, puts a small regression head on those features, frozen: the same
extractor sees each of the five bands of a cutout (one shared set of weights, ``TimeDistributed``
over bands), and the head regresses log10 M500 on the concatenated per-band features.

Every model here is a Keras 3 functional model of named built-in layers, so the regressor saves
and loads as one ``.keras`` file in ``safe_mode`` (no Lambda layers) and runs as a zoo member.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from survey_mass.constants import MODEL_INPUT_SHAPE, SDSS_BANDS
from survey_mass.models.blocks import conv_blocks
from survey_mass.models.heads import regression_head

OPTICAL_INPUT_SHAPE = MODEL_INPUT_SHAPE["optical"]
N_BANDS = len(SDSS_BANDS)
EXTRACTOR_NAME = "band_features"
#: name of the TimeDistributed layer that runs the frozen extractor on each band
PER_BAND_LAYER = "per_band_features"


def build_feature_extractor(
    image_shape: tuple[int, int] = OPTICAL_INPUT_SHAPE[:2],
    filters: Sequence[int] = (8, 16, 32, 64),
) -> keras.Model:
    """Single-band image (H, W, 1) -> feature vector of ``filters[-1]`` values.

    Per entry of ``filters`` a 3x3 ReLU convolution and a 2x2 max pool, then global average
    pooling: with ReLU features, the average over the image counts the sources a filter answers
    to, the quantity a richness estimate is built from.
    """
    inputs = keras.Input(shape=(*image_shape, 1), name="band_image")
    x = conv_blocks(inputs, filters, conv_name="feat_conv{block}", pool_name="feat_pool{block}")
    outputs = layers.GlobalAveragePooling2D(name="feat_gap")(x)
    return keras.Model(inputs, outputs, name=EXTRACTOR_NAME)


def build_band_classifier(extractor: keras.Model) -> keras.Model:
    """Step 1: the extractor plus a softmax over the five SDSS bands (ugriz order)."""
    inputs = keras.Input(shape=extractor.input_shape[1:], name="band_image")
    probabilities = layers.Dense(N_BANDS, activation="softmax", name="band")(extractor(inputs))
    return keras.Model(inputs, probabilities, name="band_classifier")


def frozen_copy(extractor: keras.Model) -> keras.Model:
    """A non-trainable clone of the extractor holding its current weights."""
    copy = keras.models.clone_model(extractor)
    copy.set_weights(extractor.get_weights())
    copy.trainable = False
    return copy


def build_optical_regressor(
    extractor: keras.Model,
    *,
    hidden: Sequence[int] = (32, 16),
    dropout: Sequence[float] = (0.2, 0.0),
    mean_log_mass: float = 14.3,
    aleatoric: bool = False,
) -> keras.Model:
    """Step 2: ugriz cube (H, W, 5) -> log10 M500 from the frozen extractor's per-band features.

    The bands are moved to a leading axis (``Permute`` + ``Reshape``) and the frozen copy of
    ``extractor`` runs on each (``TimeDistributed``); only the head is trained.
    """
    height, width = extractor.input_shape[1:3]
    inputs = keras.Input(shape=(height, width, N_BANDS), name="ugriz")
    x = layers.Permute((3, 1, 2), name="bands_first")(inputs)
    x = layers.Reshape((N_BANDS, height, width, 1), name="band_stack")(x)
    x = layers.TimeDistributed(frozen_copy(extractor), name=PER_BAND_LAYER)(x)
    x = layers.Flatten(name="band_features_flat")(x)
    outputs = regression_head(
        x,
        hidden=hidden,
        dropout=dropout,
        mean_log_mass=mean_log_mass,
        aleatoric=aleatoric,
        prefix="mass",
    )
    return keras.Model(inputs, outputs, name="optical_regressor")
