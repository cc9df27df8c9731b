"""Fold ensembles at inference: every member predicts, the mean is the mass, the spread its doubt.

Per cluster: ``log10_m500`` = mean of the members, ``spread`` = their standard deviation, and
``sigma`` = sqrt(spread^2 + s^2), where ``s`` is the calibrated per-cluster aleatoric sigma (the
members' mean predicted variance times the manifest's ``calibration.sigma_scale``) or, for members
without one, the calibrated constant ``calibration.sigma_dex`` (else the held-out ``scatter_dex``):
members agree on a cluster they all misjudge, so their spread alone would understate the error.
The 95% half-width is ``calibration.interval_95`` sigmas (measured on validation folds; 1.96 for
an entry without one). An entry with one model per redshift bin has a calibration per bin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey_mass.constants import GAUSS_95, Z_BINS
from survey_mass.preprocess.augment import DIHEDRAL_ORDER, tta_mean
from survey_mass.xp import to_numpy
from survey_mass.zoo.manifest import entry_version, verify_manifest


@dataclass
class Prediction:
    log10_m500: np.ndarray  # dex [log10 Msun]
    spread: np.ndarray  # dex, std over members
    sigma: np.ndarray  # dex, total 1-sigma (68% half-width)
    half_width_95: np.ndarray  # dex


class FoldEnsemble:
    """The members of one zoo entry, loaded with Keras safe_mode after their hashes are checked.

    Members are averaged, or, for an entry with ``combine = "by_z_bin"`` (the SZ paper's one model
    per redshift bin), each target is weighed by the members of its bin (lo, hi]. A member may
    standardise its input, (x - mu) / sigma, from the manifest's per-bin ``standardisation``.
    """

    def __init__(self, path: str | os.PathLike):
        from survey_mass.tensorflow_runtime import import_tensorflow

        import_tensorflow()
        import keras

        self.path = Path(path)
        self.manifest = verify_manifest(self.path)
        self.name = self.manifest["ensemble"]
        self.instrument = self.manifest["instrument"]
        self.preprocessing = self.manifest.get("preprocessing", "")
        calibration = self.manifest.get("calibration", {})
        self.sigma_scale = float(calibration.get("sigma_scale", 1.0))
        self.scatter = float(calibration.get("sigma_dex", self.manifest.get("scatter_dex", 0.0)))
        self.by_z_bin = self.manifest.get("combine", "mean") == "by_z_bin"
        standardisation = self.manifest.get("standardisation")
        per_bin = {tuple(c["z_bin"]): c for c in calibration.get("z_bins", []) if c.get("z_bin")}
        self.members = []
        for m in self.manifest["members"]:
            model = keras.models.load_model(self.path / m["file"], safe_mode=True, compile=False)
            z_bin = tuple(m["z_bin"]) if self.by_z_bin else None
            mu, sigma = 0.0, 1.0
            if standardisation and z_bin is not None:
                i = [tuple(b) for b in Z_BINS].index(z_bin)
                mu, sigma = standardisation["mu"][i], standardisation["sigma"][i]
            own = per_bin.get(z_bin, calibration)
            scatter = float(own.get("sigma_dex", m.get("scatter_dex", self.scatter)))
            interval_95 = float(own.get("interval_95", GAUSS_95))
            self.members.append((model, z_bin, mu, sigma, scatter, interval_95))
        self._graphs: dict = {}

    @property
    def version(self) -> str:
        return entry_version(self.manifest)

    @property
    def input_shape(self) -> tuple:
        """(H, W, C) of one model input."""
        return tuple(self.members[0][0].input_shape[1:])

    def _member_predict(self, model, inputs, batch_size: int) -> np.ndarray:
        """(N, 2) of one member called eagerly batch by batch (the unstacked baseline)."""
        out = [
            to_numpy(model(_to_framework(inputs[i : i + batch_size]), training=False))
            for i in range(0, len(inputs), batch_size)
        ]
        return _postprocess(np.concatenate(out)) if out else np.zeros((0, 2))

    def _eager_group_predict(self, members, inputs, xp, tta: bool, batch_size: int) -> np.ndarray:
        """(members, N, 2), member by member and orientation by orientation (the old path)."""
        per_member = []
        for model, _, mu, sigma, *_ in members:
            x = inputs if (mu, sigma) == (0.0, 1.0) else ((inputs - mu) / sigma).astype(xp.float32)

            def predict(b, model=model):
                return self._member_predict(model, b, batch_size)

            per_member.append(tta_mean(predict, x, xp) if tta else predict(x))
        return np.stack(per_member).astype(np.float64)

    def _group_predict(self, members, inputs, xp, tta: bool, batch_size: int) -> np.ndarray:
        """(members, N, 2): every member on each shared input batch, in one graph call."""
        key = (members[0][1], tta)
        if key not in self._graphs:  # traced once per ensemble, z bin and TTA setting
            self._graphs[key] = stacked_graph(
                [m[0] for m in members], [m[2:4] for m in members], tta, self.input_shape
            )
        graph = self._graphs[key]
        # with TTA each input becomes 8 images: keep ~batch_size images per member call
        step = max(1, batch_size // DIHEDRAL_ORDER) if tta else batch_size
        inputs = inputs.astype(xp.float32, copy=False)  # the graph's signature is float32
        chunks = []
        for i in range(0, len(inputs), step):
            raw = [to_numpy(o) for o in graph(_to_framework(inputs[i : i + step]))]
            chunks.append(np.stack([_orientation_mean(_postprocess(r), tta) for r in raw]))
        if not chunks:
            return np.zeros((len(members), 0, 2))
        return np.concatenate(chunks, axis=1).astype(np.float64)  # (members, N, 2)

    def predict(
        self, inputs, z=None, xp=np, tta: bool = False, batch_size: int = 64, stacked: bool = True
    ) -> Prediction:
        """log10 M500 for a (N, H, W, C) batch on ``xp``; NaN where no member covers a target's z.

        ``stacked`` (the default) runs a group's members as one graph on each shared batch;
        ``stacked=False`` calls them one by one, eagerly (the baseline the benchmark measures).
        """
        group_predict = self._group_predict if stacked else self._eager_group_predict
        n = len(inputs)
        mean, spread, aleatoric = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        scatter, interval_95 = np.full(n, self.scatter), np.full(n, GAUSS_95)
        if self.by_z_bin:
            if z is None:
                raise ValueError(f"ensemble {self.name} has one model per redshift bin: pass z")
            z = np.asarray(z, dtype=float)
            groups = {}
            for member in self.members:
                groups.setdefault(member[1], []).append(member)
            selections = [
                (np.flatnonzero((z > lo) & (z <= hi)), g) for (lo, hi), g in groups.items()
            ]
        else:
            selections = [(np.arange(n), self.members)]
        for rows, members in selections:
            if rows.size == 0:
                continue
            stack = group_predict(members, inputs[xp.asarray(rows)], xp, tta, batch_size)
            mean[rows] = stack[..., 0].mean(axis=0)
            spread[rows] = stack[..., 0].std(axis=0, ddof=1) if len(stack) > 1 else 0.0
            aleatoric[rows] = stack[..., 1].mean(axis=0)
            scatter[rows] = np.mean([m[4] for m in members])
            interval_95[rows] = np.mean([m[5] for m in members])
        noise = np.where(np.isnan(aleatoric), scatter**2, self.sigma_scale**2 * aleatoric)
        sigma = np.sqrt(spread**2 + noise)
        return Prediction(mean, spread, sigma, interval_95 * sigma)


def _postprocess(out: np.ndarray) -> np.ndarray:
    """(N, 2) from a member's raw output: log10 M and the aleatoric variance (NaN without one)."""
    if out.shape[-1] == 1:
        return np.stack([out[..., 0], np.full(out.shape[:-1], np.nan)], axis=-1)
    return np.stack([out[..., 0], np.exp(np.clip(out[..., 1], -20.0, 10.0))], axis=-1)


def _orientation_mean(out: np.ndarray, tta: bool) -> np.ndarray:
    """The mean over the 8 orientations of an (8 B, 2) TTA output (stacked by orientation)."""
    if not tta:
        return out
    per_k = out.reshape(DIHEDRAL_ORDER, -1, out.shape[-1])
    return sum(per_k[1:], per_k[0]) / DIHEDRAL_ORDER  # the order tta_mean sums in


def _dihedral_tf(tf, x, k: int):
    """``augment.dihedral(x, k, axes=(1, 2))`` in TensorFlow (as NumPy's flip and rot90)."""
    perm = [0, 2, 1, *range(3, len(x.shape))]
    if k >= 4:
        x = tf.reverse(x, [2])
    k %= 4
    if k == 1:
        return tf.transpose(tf.reverse(x, [2]), perm)
    if k == 2:
        return tf.reverse(x, [1, 2])
    if k == 3:
        return tf.reverse(tf.transpose(x, perm), [2])
    return x


def stacked_graph(models, standardisation, tta: bool, input_shape: tuple):
    """One ``tf.function``: a batch -> each member's raw output on it (standardised per member),
    with TTA the 8 orientations stacked into one batch of 8 B (orientation-major). The batch size
    is left open in the signature, so a shard's short last batch reuses the one trace."""
    from survey_mass.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])
    def run(x):
        if tta:
            x = tf.concat([_dihedral_tf(tf, x, k) for k in range(DIHEDRAL_ORDER)], axis=0)
        outs = []
        for model, (mu, sigma) in zip(models, standardisation, strict=True):
            own = x if (mu, sigma) == (0.0, 1.0) else (x - mu) / sigma
            outs.append(model(own, training=False))
        return outs

    return run


def _to_framework(batch):
    """NumPy passes as is; a CuPy batch goes to TensorFlow by DLPack, without a host copy."""
    if isinstance(batch, np.ndarray):
        return batch
    import cupy

    from survey_mass.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()

    # CuPy's preprocessing kernels run on CuPy's current stream and TensorFlow reads on its own:
    # let them finish before TensorFlow sees the memory, or it may read a half-written batch
    cupy.cuda.get_current_stream().synchronize()
    return tf.experimental.dlpack.from_dlpack(batch.toDlpack())


_LOADED: dict[tuple[type, Path], object] = {}


def load_once(entry_class: type, path: str | os.PathLike):
    """The zoo entry at ``path`` as ``entry_class``, built once per process."""
    key = (entry_class, Path(path).resolve())
    if key not in _LOADED:
        _LOADED[key] = entry_class(key[1])
    return _LOADED[key]


def forget(path: str | os.PathLike) -> None:
    """Drop whatever this process loaded from ``path`` (the entry there was retrained)."""
    resolved = Path(path).resolve()
    for key in [k for k in _LOADED if k[1] == resolved]:
        del _LOADED[key]


def load_ensemble(path: str | os.PathLike) -> FoldEnsemble:
    """The ensemble at ``path``, loaded once per process (the worker plugin pre-loads it)."""
    return load_once(FoldEnsemble, path)
