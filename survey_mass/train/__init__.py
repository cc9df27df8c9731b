"""Training the zoo's ensembles on the mock survey: ``TRAINERS`` maps an instrument to its trainer.

Every trainer takes the ``[train]`` spec and the job file (where its own table, e.g. ``[sz]``,
lives) and returns (zoo entry folder, metrics). Each imports its module only when called: those
load TensorFlow, and ``survey_mass.cli`` reads this registry when it builds its parser.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from survey_mass.train.spec import TrainSpec


def _xray_job(spec: TrainSpec, job_file: str | Path) -> tuple[Path, dict]:
    """The X-ray fold ensemble (no table of its own)."""
    from survey_mass.train import xray

    return xray.train_xray(spec)


def _sz_job(spec: TrainSpec, job_file: str | Path) -> tuple[Path, dict]:
    """The per-redshift-bin SZ models, with the job file's ``[sz]`` table."""
    from survey_mass.train import sz
    from survey_mass.train.assemble import load_settings

    return sz.train_sz(spec, load_settings(job_file, "sz", sz.SZSettings))


def _optical_job(spec: TrainSpec, job_file: str | Path) -> tuple[Path, dict]:
    """The two-step optical model, with the job file's ``[optical]`` table."""
    from survey_mass.train import optical
    from survey_mass.train.assemble import load_settings

    return optical.train_optical(spec, load_settings(job_file, "optical", optical.OpticalSettings))


TRAINERS: dict[str, Callable[[TrainSpec, str | Path], tuple[Path, dict]]] = {
    "xray": _xray_job,
    "sz": _sz_job,
    "optical": _optical_job,
}
