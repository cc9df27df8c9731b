"""Cross-validation folds grouped by cluster, as in Ntampaka et al. 2019.

Clusters are sorted by true mass and dealt cyclically into K folds, so every fold spans the mass
range; all images of a cluster (augmentations, projections) stay in its fold. Fold k is tested on
fold k, validated (early stopping) on fold k+1, and trained on the remaining K-2.
"""

from __future__ import annotations

import numpy as np


def mass_sorted_folds(log_mass: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold index of each cluster: sort by mass, deal cyclically."""
    if n_folds < 3:
        raise ValueError(f"need at least 3 folds (train/validation/test), got {n_folds}")
    if len(log_mass) < n_folds:
        raise ValueError(f"{len(log_mass)} clusters cannot fill {n_folds} folds")
    folds = np.empty(len(log_mass), dtype=np.int64)
    folds[np.argsort(log_mass, kind="stable")] = np.arange(len(log_mass)) % n_folds
    return folds


def fold_split(folds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) cluster indices for ensemble member ``k``."""
    n_folds = int(folds.max()) + 1
    val = (k + 1) % n_folds
    test_idx = np.flatnonzero(folds == k)
    val_idx = np.flatnonzero(folds == val)
    train_idx = np.flatnonzero((folds != k) & (folds != val))
    return train_idx, val_idx, test_idx
