"""The dihedral group used for augmentation and test-time averaging."""

from __future__ import annotations

import numpy as np
import pytest

from survey_mass.preprocess.augment import (
    DIHEDRAL_ORDER,
    all_dihedral,
    dihedral,
    inverse_dihedral,
    inverse_index,
    tta_mean,
    tta_predictions,
)


@pytest.fixture
def batch() -> np.ndarray:
    """Two asymmetric 5x5 two-channel images, so every transform gives a different array."""
    return np.random.default_rng(0).normal(size=(2, 5, 5, 2))


def test_eight_distinct_transforms_identity_first(batch):
    images = all_dihedral(batch, np)
    assert len(images) == DIHEDRAL_ORDER
    np.testing.assert_array_equal(images[0], batch)
    for i in range(DIHEDRAL_ORDER):
        for j in range(i + 1, DIHEDRAL_ORDER):
            assert not np.array_equal(images[i], images[j]), (i, j)
    assert all(im.shape == batch.shape for im in images)
    # channels stay with their pixel: transforms act on the image plane only
    np.testing.assert_array_equal(dihedral(batch, 3, np)[..., 1], dihedral(batch[..., 1], 3, np))


def test_inverses_undo_every_transform(batch):
    for k in range(DIHEDRAL_ORDER):
        np.testing.assert_array_equal(inverse_dihedral(dihedral(batch, k, np), k, np), batch)
        assert inverse_index(inverse_index(k)) == k


def test_closed_under_composition(batch):
    """A group: composing two transforms gives one of the eight."""
    images = all_dihedral(batch, np)
    for a in range(DIHEDRAL_ORDER):
        for b in range(DIHEDRAL_ORDER):
            composed = dihedral(dihedral(batch, b, np), a, np)
            assert sum(np.array_equal(composed, im) for im in images) == 1, (a, b)


def test_tta_of_invariant_function_equals_function(batch):
    def radial_profile_sum(x):  # rotation- and flip-invariant per image
        return (x**2).sum(axis=(1, 2, 3))

    np.testing.assert_allclose(tta_mean(radial_profile_sum, batch, np), radial_profile_sum(batch))


def test_tta_averages_a_non_invariant_function(batch):
    def first_row(x):
        return x[:, 0, :, 0].sum(axis=1)

    outputs = tta_predictions(first_row, batch, np)
    assert len(outputs) == DIHEDRAL_ORDER
    assert not np.allclose(outputs[0], outputs[1])
    np.testing.assert_allclose(tta_mean(first_row, batch, np), np.mean(outputs, axis=0))
    # every edge of the image appears twice among the 8 "first rows" (once per reflection)
    edges = batch[:, 0, :, 0].sum(1) + batch[:, -1, :, 0].sum(1)
    edges = edges + batch[:, :, 0, 0].sum(1) + batch[:, :, -1, 0].sum(1)
    np.testing.assert_allclose(tta_mean(first_row, batch, np), edges / 4)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="square"):
        dihedral(np.zeros((1, 4, 5)), 1, np)
    with pytest.raises(ValueError, match="0..7"):
        dihedral(np.zeros((1, 4, 4)), 8, np)
