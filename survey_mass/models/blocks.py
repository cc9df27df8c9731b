"""The convolutional blocks every mass CNN is built from (X-ray, SZ, optical, DeepPlanck)."""

from __future__ import annotations

from collections.abc import Sequence

from keras import layers


def conv_blocks(
    x,
    widths: Sequence[int],
    *,
    convs: int = 1,
    padding: str = "same",
    conv_name: str = "conv{block}",
    pool_name: str = "pool{block}",
):
    """Per entry of ``widths``, ``convs`` 3x3 ReLU convolutions of that width and a 2x2 max pool.

    Layer names come from the templates, formatted with the block number ``{block}`` and the
    convolution number in it ``{conv}`` (both from 1). Each builder passes its own: saved models
    and tests refer to those names, so a builder's templates must never change.
    """
    for block, width in enumerate(widths, start=1):
        for conv in range(1, convs + 1):
            name = conv_name.format(block=block, conv=conv)
            x = layers.Conv2D(width, 3, padding=padding, activation="relu", name=name)(x)
        x = layers.MaxPooling2D(2, name=pool_name.format(block=block))(x)
    return x
