"""The joint mass: the instruments' masses combined by a model learned on held-out mock clusters.

Per redshift bin, each instrument's ensemble mass is first recalibrated, log M_true ~ a + b m
(least squares over clusters none of the ensembles saw: the CNNs shrink towards their training
population's mean, SZ and optical far more than X-ray, so their raw masses are biased at both
ends). The recalibrated masses are then combined by generalised least squares with a learned
error model: per-cluster sigmas (the ensemble's own sigma times a fitted level, so the X-ray
aleatoric head still flags a mis-centred cluster) and the correlation of the instruments'
normalised residuals. A cluster missing an instrument uses the same model on the instruments it
has; one whose only masses come from instruments its bin leaves out (no information there, e.g.
the SZ ensemble above z 0.4) keeps their inverse-variance mean. The joint sigma is then scaled so
that 68% and 95% of the fit's residuals fall within the 68% and 95% intervals.

Without a joint entry fitted on the job's ensembles, masses combine by inverse variance.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey_mass.constants import GAUSS_95, INSTRUMENTS
from survey_mass.infer.ensemble import load_once
from survey_mass.zoo.manifest import entry_version, verify_manifest
from survey_mass.zoo.registry import JOINT, fitted_on_mismatch

MODEL_FILE = "joint.json"


@dataclass
class JointMass:
    log10_m500: np.ndarray  # dex(Msun)
    sigma: np.ndarray  # dex, 68% half-width
    half_width_95: np.ndarray  # dex, 95% half-width


def subset_key(instruments) -> str:
    """'xray+sz' for any ordering of those instruments: the key of that combination's calibration."""
    return "+".join(i for i in INSTRUMENTS if i in set(instruments))


def inverse_variance(means: dict[str, np.ndarray], sigmas: dict[str, np.ndarray]) -> JointMass:
    """The inverse-variance mean of whichever instruments gave a finite mass (NaN where none)."""
    m = np.stack(list(means.values()))
    w = 1.0 / np.stack(list(sigmas.values())) ** 2
    usable = np.isfinite(m) & np.isfinite(w)
    w = np.where(usable, w, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        joint = (np.where(usable, m, 0.0) * w).sum(axis=0) / total
        sigma = 1.0 / np.sqrt(total)
    return JointMass(joint, sigma, GAUSS_95 * sigma)


@dataclass
class BinModel:
    """One redshift bin's recalibrations, sigma levels and residual correlation."""

    z_bin: tuple[float, float]
    instruments: list[str]
    recalibration: dict[str, tuple[float, float]]  # inst -> (a, b): log M_true ~ a + b m
    sigma_level: dict[str, float]  # inst -> std of (recalibrated residual / ensemble sigma)
    correlation: np.ndarray  # (n_inst, n_inst) of the normalised residuals

    def to_dict(self) -> dict:
        return {
            "z_bin": list(self.z_bin),
            "instruments": self.instruments,
            "recalibration": {k: list(v) for k, v in self.recalibration.items()},
            "sigma_level": self.sigma_level,
            "correlation": self.correlation.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> BinModel:
        return cls(
            tuple(d["z_bin"]),
            list(d["instruments"]),
            {k: tuple(v) for k, v in d["recalibration"].items()},
            {k: float(v) for k, v in d["sigma_level"].items()},
            np.asarray(d["correlation"], dtype=float),
        )


@dataclass
class JointParameters:
    """Everything the joint model learned: per-bin models and per-combination interval scales."""

    bins: list[BinModel]
    interval_scale: dict[str, tuple[float, float]]  # subset key -> (k68, k95)

    def to_dict(self) -> dict:
        return {
            "bins": [b.to_dict() for b in self.bins],
            "interval_scale": {k: list(v) for k, v in self.interval_scale.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> JointParameters:
        return cls(
            [BinModel.from_dict(b) for b in d["bins"]],
            {k: tuple(v) for k, v in d["interval_scale"].items()},
        )

    def combine(
        self,
        z: np.ndarray,
        means: dict[str, np.ndarray],
        sigmas: dict[str, np.ndarray],
        calibrated: bool = True,
    ) -> JointMass:
        """The joint mass of each cluster from the instruments it has (NaN where it has none).

        ``calibrated=False`` leaves the sigma unscaled (what the fit calibrates against).
        """
        z = np.asarray(z, dtype=float)
        n = len(z)
        joint, sigma, half95 = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        for b in self.bins:
            lo, hi = b.z_bin
            rows = np.flatnonzero((z > lo) & (z <= hi))
            insts = [i for i in b.instruments if i in means]
            for r in rows:
                have = [i for i in insts if np.isfinite(means[i][r]) and np.isfinite(sigmas[i][r])]
                if not have:
                    continue  # only instruments this bin leaves out: see below
                idx = [b.instruments.index(i) for i in have]
                m = np.array(
                    [b.recalibration[i][0] + b.recalibration[i][1] * means[i][r] for i in have]
                )
                s = np.array([max(sigmas[i][r], 1e-4) * b.sigma_level[i] for i in have])
                cov = np.outer(s, s) * b.correlation[np.ix_(idx, idx)]
                inv_one = np.linalg.solve(cov, np.ones(len(have)))
                total = inv_one.sum()
                joint[r] = inv_one @ m / total
                k68, k95 = (
                    self.interval_scale.get(subset_key(have), (1.0, GAUSS_95))
                    if calibrated
                    else (1.0, GAUSS_95)
                )
                sigma[r], half95[r] = k68 / np.sqrt(total), k95 / np.sqrt(total)
        # a cluster whose only masses come from instruments its bin left out (or outside every
        # bin) keeps their inverse-variance mean rather than losing its row
        rest = np.isnan(joint)
        if rest.any():
            fallback = inverse_variance(
                {i: np.asarray(v)[rest] for i, v in means.items()},
                {i: np.asarray(v)[rest] for i, v in sigmas.items()},
            )
            joint[rest], sigma[rest] = fallback.log10_m500, fallback.sigma
            half95[rest] = fallback.half_width_95
        return JointMass(joint, sigma, half95)


class JointModel:
    """A joint zoo entry: its parameters, and the ensemble versions they were fitted on."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = verify_manifest(self.path)
        if self.manifest["instrument"] != JOINT:
            raise ValueError(f"{self.path} is a {self.manifest['instrument']} ensemble, not joint")
        self.name = self.manifest["ensemble"]
        self.fitted_on: dict[str, str] = self.manifest["fitted_on"]
        data = json.loads((self.path / self.manifest["members"][0]["file"]).read_text())
        self.parameters = JointParameters.from_dict(data)

    @property
    def version(self) -> str:
        return entry_version(self.manifest)

    def mismatch(self, versions: dict[str, str]) -> list[str]:
        """Why this model can't combine the given ``instrument -> ensemble version``; [] if it can."""
        return fitted_on_mismatch(self.manifest, versions)

    def combine(self, z, means, sigmas) -> JointMass:
        return self.parameters.combine(z, means, sigmas)


def load_joint(path: str | os.PathLike) -> JointModel:
    """The joint entry at ``path``, loaded once per process."""
    return load_once(JointModel, path)
