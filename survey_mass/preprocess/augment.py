"""The 8 dihedral transforms of a square image (4 rotations x optional flip) on NumPy or CuPy.

A cluster's mass does not depend on how its image is oriented on the sky, so these serve both
training augmentation and test-time augmentation (TTA: average the predictions over the 8). The
X-ray paper's 24 = 3 projections x 8 needs the simulator; only the 8 image-plane ones live here.

Transform ``k`` (0..7) is ``rot90`` by ``k % 4`` quarter turns after a flip of the width axis when
``k >= 4``; ``k = 0`` is the identity. Arrays are batches with the image plane on ``axes``
(default (1, 2): (N, H, W) or (N, H, W, C)).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

DIHEDRAL_ORDER = 8


def _check(k: int, batch: Any, axes: tuple[int, int]) -> None:
    if not 0 <= k < DIHEDRAL_ORDER:
        raise ValueError(f"dihedral transform index must be in 0..{DIHEDRAL_ORDER - 1}, not {k}")
    h, w = batch.shape[axes[0]], batch.shape[axes[1]]
    if h != w:
        raise ValueError(f"dihedral transforms need square images, got {h}x{w} on axes {axes}")


def dihedral(batch: Any, k: int, xp: ModuleType, axes: tuple[int, int] = (1, 2)) -> Any:
    """Transform ``k`` of the dihedral group applied to every image of ``batch``."""
    _check(k, batch, axes)
    out = xp.flip(batch, axis=axes[1]) if k >= 4 else batch
    return xp.rot90(out, k % 4, axes=axes)


def inverse_index(k: int) -> int:
    """The index of the transform that undoes ``k``: rotations reverse, reflections are their own."""
    if not 0 <= k < DIHEDRAL_ORDER:
        raise ValueError(f"dihedral transform index must be in 0..{DIHEDRAL_ORDER - 1}, not {k}")
    return (4 - k) % 4 if k < 4 else k


def inverse_dihedral(batch: Any, k: int, xp: ModuleType, axes: tuple[int, int] = (1, 2)) -> Any:
    """Undo transform ``k`` (maps a per-pixel output, e.g. a saliency map, back to the sky)."""
    return dihedral(batch, inverse_index(k), xp, axes)


def all_dihedral(batch: Any, xp: ModuleType, axes: tuple[int, int] = (1, 2)) -> list[Any]:
    """The 8 transformed copies of ``batch``, in index order (for 8x training augmentation)."""
    return [dihedral(batch, k, xp, axes) for k in range(DIHEDRAL_ORDER)]


def tta_predictions(
    predict_fn: Callable[[Any], Any], batch: Any, xp: ModuleType, axes: tuple[int, int] = (1, 2)
) -> list[Any]:
    """``predict_fn`` on each of the 8 orientations of ``batch``, in index order.

    ``predict_fn`` is called once per orientation (8 calls of the batch's size, not one of 8x its
    size) so the memory needed stays that of one batch. Each transformed copy is made contiguous,
    which NumPy/CuPy views from ``rot90`` are not and some consumers (TF, DLPack) require.
    """
    return [
        predict_fn(xp.ascontiguousarray(dihedral(batch, k, xp, axes)))
        for k in range(DIHEDRAL_ORDER)
    ]


def tta_mean(
    predict_fn: Callable[[Any], Any], batch: Any, xp: ModuleType, axes: tuple[int, int] = (1, 2)
) -> Any:
    """Mean of ``predict_fn`` over the 8 orientations, for orientation-free outputs (masses).

    Outputs that are maps must be brought back with ``inverse_dihedral`` before averaging; this
    helper is for per-image scalars or vectors.
    """
    outputs = tta_predictions(predict_fn, batch, xp, axes)
    return sum(outputs[1:], outputs[0]) / DIHEDRAL_ORDER
