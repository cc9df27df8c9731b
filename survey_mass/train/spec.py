"""Training job specs (the ``[train]`` table of a TOML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import tomllib
from pydantic import Field, ValidationError

from survey_mass.errors import JobSpecError
from survey_mass.spec.base import StrictModel
from survey_mass.spec.job import format_validation_error
from survey_mass.spec.universe import UniverseSpec


class TailSpec(StrictModel):
    """Extra massive clusters for training: the mass function gives a survey few of them, so
    without a tail sample a model regresses to the mean exactly where PSZ2 and weak lensing are.

    They are drawn from the same universe above ``log10_m500_min``, in a cone far from the main
    sample's (so no cluster is drawn twice). The prior a model learns is then the mass function
    plus this tail; the calibration map, fitted on a fresh mass-function population, removes what
    that does to the median (see survey_mass/infer/calibration_map.py).
    """

    n_clusters: int = Field(ge=10, description="massive clusters added to the training set")
    log10_m500_min: float = Field(14.5, ge=13.5, le=15.3, description="[log10 Msun]")


class TrainSpec(StrictModel):
    """How one fold ensemble is trained on the mock survey; defaults fit 2 CPU cores."""

    instrument: Literal["xray", "sz", "optical"]
    ensemble: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="zoo name, e.g. xray-v1")
    out: str = Field(description="folder the ensemble is written to")
    n_clusters: int = Field(800, ge=30)
    folds: int = Field(5, ge=3, le=20)
    max_epochs: int = Field(30, ge=1, description="the paper's cap is 400")
    min_epochs: int = Field(5, ge=1, description="never stop on the criteria before this epoch")
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    augmentations_per_epoch: int = Field(
        2, ge=1, le=8, description="random dihedral copies per epoch"
    )
    aleatoric: bool = Field(
        False, description="add a log-variance output, fine-tuned with the Gaussian NLL after MSE"
    )
    nll_epochs: int = Field(8, ge=1, description="epochs of the NLL fine-tuning phase")
    universe: UniverseSpec = Field(default_factory=lambda: UniverseSpec(seed=1001))
    tail: TailSpec | None = Field(None, description="massive clusters added to the mass function")
    fit_seed: int = 0

    def prior(self, universe: UniverseSpec | None = None) -> dict:
        """The training population, as stated in the manifest: what the model's output leans to."""
        universe = universe or self.universe
        return {
            "mass_function": "Tinker et al. 2008, M500c (survey_mass/mock/universe.py)",
            "log10_m500": [universe.log10_m500_min, universe.log10_m500_max],
            "z": [universe.z_min, universe.z_max],
            "physics": universe.physics,
            "n_mass_function": self.n_clusters,
            "tail": None if self.tail is None else self.tail.model_dump(),
        }


def load_train_spec(path: str | Path) -> TrainSpec:
    path = Path(path)
    if not path.is_file():
        raise JobSpecError(f"{path}: no such training spec; see jobs/train_xray.toml")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise JobSpecError(f"{path}: not valid TOML ({err})") from err
    if "train" not in data:
        raise JobSpecError(f"{path}: no [train] table; a training spec starts with [train]")
    try:
        return TrainSpec.model_validate(data["train"])
    except ValidationError as err:
        raise JobSpecError(format_validation_error(err, f"{path} [train]")) from err
