"""The array module: CuPy on a GPU, NumPy otherwise, behind one name so the code is the same."""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np


@functools.lru_cache(maxsize=4)
def array_module(device: str = "auto") -> ModuleType:
    """``cupy`` when ``device`` is 'gpu' (or 'auto' and a GPU is usable), else ``numpy``."""
    if device not in {"auto", "cpu", "gpu"}:
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', not {device!r}")
    if device == "cpu":
        return np
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception as err:  # no cupy, no driver or no device
        if device == "gpu":
            raise RuntimeError(
                f"device = 'gpu' asked for, but CuPy cannot use a GPU: {err}"
            ) from err
        return np


def to_numpy(array) -> np.ndarray:
    """A host copy of an xp array (no copy for NumPy)."""
    return array.get() if hasattr(array, "get") else np.asarray(array)
