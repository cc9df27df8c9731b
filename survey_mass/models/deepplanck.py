"""The published DeepPlanck SZ models (de Andres et al. 2022) as the ``deepplanck`` zoo ensemble.

The authors released Keras 2 HDF5 weights, one model per redshift bin. Loading those files with
Keras would deserialise foreign code, so only their numeric arrays are read (h5py), checked
against our copy of the architecture (``sz.build_deepplanck_cnn``) and set into it. The h^-1
of the published output is folded into the output bias, so every zoo model says log10 M500 [Msun].
The converted models are not stored in the repository: ``save_as_zoo_entry`` builds the entry on
demand from the shared data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import keras
import numpy as np

from survey_mass.constants import PLANCK_PIXEL, SZ_GRID, Z_BINS
from survey_mass.models.sz import build_deepplanck_cnn, z_bin_index
from survey_mass.preprocess.augment import tta_predictions
from survey_mass.zoo.manifest import sha256_file, verify_manifest, write_manifest

ENSEMBLE_NAME = "deepplanck"
PREPROCESSING = "deepplanck-standardise-v1"
#: Hubble parameter of the simulations the models were trained on (THE300, Planck 2015).
DEEPPLANCK_H = 0.678
#: Input standardisation (y - mu) / sigma per redshift bin, from the authors' repository.
MU = (1.8827347385422218e-06, 2.2296471704066543e-07, 8.347489023971544e-08, 3.14216726766519e-08)
SIGMA = (
    7.136290778515806e-06,
    2.036420289662876e-06,
    1.4639878011606421e-06,
    1.300205829438648e-06,
)
WEIGHT_FILES = tuple(f"bestmodel-{i}.h5" for i in range(1, len(Z_BINS) + 1))
SOURCE = {
    "paper": "de Andres et al. 2022, Nature Astronomy, 'Deep learning mass estimates for Planck "
    "PSZ2 clusters', arXiv:2209.10333",
    "repository": "The300th/DeepPlanck, commit c35adb5 (no licence file; cite the paper)",
    "provenance": "shared/data/deepplanck/PROVENANCE.md",
}


def default_source_dir() -> Path:
    """``$SURVEY_MASS_SHARED_DATA/deepplanck``, else ``shared/data/deepplanck`` beside the checkout."""
    shared = os.environ.get("SURVEY_MASS_SHARED_DATA")
    root = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared" / "data"
    return root / "deepplanck"


def read_h5_weights(path: str | os.PathLike) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(layer name, {"kernel", "bias"}) for each layer with weights, in ``layer_names`` order.

    Reads numeric datasets only; anything else in a weight slot is refused.
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        if "layer_names" not in f.attrs:
            raise ValueError(f"{path} has no 'layer_names' attribute: not a Keras 2 weights file")
        layers: list[tuple[str, dict[str, np.ndarray]]] = []
        for raw in f.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            group = f[name]
            arrays: dict[str, np.ndarray] = {}
            for raw_weight in group.attrs.get("weight_names", []):
                weight = raw_weight.decode() if isinstance(raw_weight, bytes) else str(raw_weight)
                slot = weight.rsplit("/", 1)[-1]
                dataset = group.get(weight)
                if slot not in ("kernel:0", "bias:0") or not isinstance(dataset, h5py.Dataset):
                    raise ValueError(f"{path}: layer {name!r} has unexpected weight {weight!r}")
                if dataset.dtype.kind != "f":
                    raise ValueError(
                        f"{path}: {name}/{weight} is {dataset.dtype}, not floating point"
                    )
                arrays[slot.split(":")[0]] = np.asarray(dataset[()], dtype=np.float32)
            if arrays:
                layers.append((name, arrays))
    return layers


def load_published_model(path: str | os.PathLike, name: str = "deepplanck_cnn") -> keras.Model:
    """One bin's published weights set into ``build_deepplanck_cnn``, output in log10 Msun."""
    model = build_deepplanck_cnn(name=name)
    targets = [layer for layer in model.layers if layer.weights]
    found = read_h5_weights(path)
    if len(found) != len(targets):
        raise ValueError(
            f"{path} holds {len(found)} layers with weights ({[n for n, _ in found]}), the "
            f"DeepPlanck CNN has {len(targets)} ({[t.name for t in targets]})"
        )
    for layer, (h5_name, arrays) in zip(targets, found, strict=True):
        expected = [tuple(w.shape) for w in layer.weights]
        actual = [arrays[k].shape if k in arrays else None for k in ("kernel", "bias")]
        if actual != expected:
            raise ValueError(
                f"{path}: layer {h5_name!r} has kernel/bias shapes {actual}, our layer "
                f"{layer.name!r} needs {expected}: these weights are not the DeepPlanck CNN"
            )
        layer.set_weights([arrays["kernel"], arrays["bias"]])
    output = model.get_layer("log10_m500")
    kernel, bias = output.get_weights()
    output.set_weights([kernel, bias - np.float32(math.log10(DEEPPLANCK_H))])  # h^-1 Msun -> Msun
    return model


class DeepPlanckEnsemble:
    """The four per-bin DeepPlanck models behind one call: y maps and redshifts in, masses out."""

    def __init__(
        self,
        models: Sequence[keras.Model],
        mu: Sequence[float] = MU,
        sigma: Sequence[float] = SIGMA,
        source: dict | None = None,
    ):
        if not len(models) == len(mu) == len(sigma) == len(Z_BINS):
            raise ValueError(
                f"need one model, mu and sigma per redshift bin ({len(Z_BINS)}), got "
                f"{len(models)} models, {len(mu)} mu, {len(sigma)} sigma"
            )
        self.models = list(models)
        self.mu = [float(m) for m in mu]
        self.sigma = [float(s) for s in sigma]
        self.source = dict(source or SOURCE)

    @classmethod
    def from_published(cls, source_dir: str | os.PathLike | None = None) -> DeepPlanckEnsemble:
        """Convert the authors' HDF5 files in ``source_dir`` (default: the shared data)."""
        source_dir = Path(source_dir) if source_dir is not None else default_source_dir()
        paths = [source_dir / name for name in WEIGHT_FILES]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"DeepPlanck weights not found: {missing}; pass the folder holding "
                f"{', '.join(WEIGHT_FILES)} or set SURVEY_MASS_SHARED_DATA"
            )
        models = [load_published_model(p, f"deepplanck_bin{i}") for i, p in enumerate(paths, 1)]
        hashes = {p.name: sha256_file(p) for p in paths}
        return cls(models, source={**SOURCE, "converted_from_sha256": hashes})

    @classmethod
    def from_zoo(cls, zoo_dir: str | os.PathLike) -> DeepPlanckEnsemble:
        """Load a saved entry: hashes checked first, then ``safe_mode`` loading, no compile."""
        zoo_dir = Path(zoo_dir)
        manifest = verify_manifest(zoo_dir)
        if manifest["ensemble"] != ENSEMBLE_NAME or manifest.get("preprocessing") != PREPROCESSING:
            raise ValueError(
                f"{zoo_dir} holds ensemble {manifest['ensemble']!r} with preprocessing "
                f"{manifest.get('preprocessing')!r}, not {ENSEMBLE_NAME!r} with {PREPROCESSING!r}"
            )
        if [tuple(m["z_bin"]) for m in manifest["members"]] != list(Z_BINS):
            raise ValueError(f"{zoo_dir}: member z bins differ from constants.Z_BINS {Z_BINS}")
        models = [
            keras.models.load_model(zoo_dir / m["file"], safe_mode=True, compile=False)
            for m in manifest["members"]
        ]
        scale = manifest["standardisation"]
        return cls(models, scale["mu"], scale["sigma"], manifest.get("source"))

    def standardise(self, y_maps: np.ndarray, bin_index: int) -> np.ndarray:
        """``deepplanck-standardise-v1``: (y - mu) / sigma of the bin, as float32 NHWC."""
        y = np.asarray(y_maps, dtype=np.float64)
        return ((y - self.mu[bin_index]) / self.sigma[bin_index]).astype(np.float32)[..., None]

    def predict_log10_m500(
        self, y_maps: np.ndarray, z: np.ndarray, tta: bool = False, batch_size: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """log10 M500 [Msun] per map from its bin's model, and its spread in dex.

        ``y_maps`` are (N, 96, 96) Compton-y cutouts (a trailing channel of 1 is accepted) and
        ``z`` their redshifts. Each bin has a single model, so the spread is 0 without TTA; with
        ``tta`` the mass is the mean over the 8 dihedral orientations and the spread their std.
        """
        y_maps = np.asarray(y_maps)
        if y_maps.ndim == 4 and y_maps.shape[-1] == 1:
            y_maps = y_maps[..., 0]
        if y_maps.ndim != 3 or y_maps.shape[1:] != (SZ_GRID, SZ_GRID):
            raise ValueError(
                f"y_maps must be (N, {SZ_GRID}, {SZ_GRID}) Compton-y cutouts, got {y_maps.shape}"
            )
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        if z.shape[0] != y_maps.shape[0]:
            raise ValueError(f"{y_maps.shape[0]} maps but {z.shape[0]} redshifts")
        bad = np.flatnonzero(~np.isfinite(y_maps).all(axis=(1, 2)))
        if bad.size:
            raise ValueError(f"maps {bad[:10].tolist()} hold NaN/inf pixels: mask or drop them")
        bins = z_bin_index(z)
        mean = np.zeros(len(z))
        spread = np.zeros(len(z))
        for b in np.unique(bins):
            rows = np.flatnonzero(bins == b)
            model = self.models[b]

            def predict(x, model=model):
                return model.predict(x, batch_size=batch_size, verbose=0)[:, 0]

            inputs = self.standardise(y_maps[rows], b)
            if tta:
                outputs = np.stack(tta_predictions(predict, inputs, np))
                mean[rows], spread[rows] = outputs.mean(axis=0), outputs.std(axis=0)
            else:
                mean[rows] = predict(inputs)
        return mean, spread

    def save_as_zoo_entry(self, dest_dir: str | os.PathLike) -> Path:
        """Write the four models as .keras files and, last, the manifest; returns the folder.

        ``combine = "by_z_bin"`` tells loaders that each member serves one redshift bin: unlike a
        fold ensemble, the members must not be averaged (load with ``from_zoo``).
        """
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        members = []
        for i, (model, (lo, hi)) in enumerate(zip(self.models, Z_BINS, strict=True), start=1):
            name = f"deepplanck-bin{i}.keras"
            model.save(dest / name)
            members.append({"file": name, "z_bin": [lo, hi]})
        write_manifest(
            dest,
            ENSEMBLE_NAME,
            "sz",
            members,
            inputs={
                "shape": [SZ_GRID, SZ_GRID, 1],
                "quantity": "Compton y",
                "units": "dimensionless",
                "pixel_arcmin": PLANCK_PIXEL.to_value("arcmin"),
            },
            output="log10 M500c [Msun]",
            preprocessing=PREPROCESSING,
            standardisation={
                "formula": "(y - mu[bin]) / sigma[bin]",
                "mu": self.mu,
                "sigma": self.sigma,
            },
            combine="by_z_bin",
            z_bins={"edges": [list(b) for b in Z_BINS], "closed": "upper (lo, hi]"},
            h_folded_into_output_bias=DEEPPLANCK_H,
            source=self.source,
        )
        return dest
