"""Fold ensembles at inference: every member predicts, the mean is the mass, the spread its doubt.

Per cluster: ``log10_m500`` = mean of the members, ``spread`` = their standard deviation, and
``sigma`` = sqrt(spread^2 + scatter^2), where ``scatter`` is the ensemble's held-out scatter from
cross-validation (manifest ``scatter_dex``): the members agree on a cluster they all misjudge, so
their spread alone would understate the error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from survey_mass.errors import UserError
from survey_mass.models.manifest import verify_manifest
from survey_mass.preprocess.augment import tta_mean
from survey_mass.xp import to_numpy

SHIPPED_ZOO = Path(str(resources.files("survey_mass") / "zoo"))


def resolve_entry(name_or_path: str, extra_zoo: str | None = None) -> Path:
    """A zoo folder from a path, or a name looked up in ``extra_zoo`` then the shipped zoo."""
    candidates = [Path(name_or_path)]
    if extra_zoo:
        candidates.append(Path(extra_zoo) / name_or_path)
    candidates.append(SHIPPED_ZOO / name_or_path)
    for path in candidates:
        if (path / "manifest.json").is_file():
            return path.resolve()
    shipped = (
        sorted(p.name for p in SHIPPED_ZOO.iterdir() if (p / "manifest.json").is_file())
        if SHIPPED_ZOO.is_dir()
        else []
    )
    raise UserError(
        f"model ensemble {name_or_path!r} not found (looked in {[str(c) for c in candidates]}); "
        f"shipped ensembles: {shipped}; train one with `survey-mass train`"
    )


@dataclass
class Prediction:
    log10_m500: np.ndarray  # dex [log10 Msun]
    spread: np.ndarray  # dex, std over members
    sigma: np.ndarray  # dex, total 1-sigma


class FoldEnsemble:
    """The members of one zoo entry, loaded with Keras safe_mode after their hashes are checked."""

    def __init__(self, path: str | os.PathLike):
        import keras

        self.path = Path(path)
        self.manifest = verify_manifest(self.path)
        self.name = self.manifest["ensemble"]
        self.instrument = self.manifest["instrument"]
        self.scatter = float(self.manifest.get("scatter_dex", 0.0))
        self.members = [
            keras.models.load_model(self.path / m["file"], safe_mode=True, compile=False)
            for m in self.manifest["members"]
        ]

    @property
    def version(self) -> str:
        digest = self.manifest["members"][0]["sha256"][:8]
        return f"{self.name}@{digest}"

    def _member_predict(self, model, inputs, batch_size: int) -> np.ndarray:
        out = [
            to_numpy(model(_to_framework(inputs[i : i + batch_size]), training=False))[:, 0]
            for i in range(0, len(inputs), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros(0)

    def predict(self, inputs, xp=np, tta: bool = False, batch_size: int = 64) -> Prediction:
        """Predict log10 M500 for a (N, H, W, C) batch on ``xp``."""
        per_member = []
        for model in self.members:
            if tta:
                per_member.append(
                    tta_mean(lambda b, m=model: self._member_predict(m, b, batch_size), inputs, xp)
                )
            else:
                per_member.append(self._member_predict(model, inputs, batch_size))
        stack = np.stack(per_member).astype(np.float64)
        spread = stack.std(axis=0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1])
        return Prediction(stack.mean(axis=0), spread, np.sqrt(spread**2 + self.scatter**2))


def _to_framework(batch):
    """NumPy passes as is; a CuPy batch goes to TensorFlow by DLPack, without a host copy."""
    if isinstance(batch, np.ndarray):
        return batch
    import tensorflow as tf

    return tf.experimental.dlpack.from_dlpack(batch.toDlpack())


_LOADED: dict[Path, FoldEnsemble] = {}


def load_ensemble(path: str | os.PathLike) -> FoldEnsemble:
    """The ensemble at ``path``, loaded once per process (the worker plugin pre-loads it)."""
    key = Path(path).resolve()
    if key not in _LOADED:
        _LOADED[key] = FoldEnsemble(key)
    return _LOADED[key]
