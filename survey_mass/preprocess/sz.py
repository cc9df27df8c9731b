"""Compton-y cutouts -> CNN input: the y map on the 96x96 grid at Planck's 1.7 arcmin pixels.

The map stays in y units (surface brightness, so no flux rescaling on resampling); each ensemble
member standardises it for its redshift bin ((y - mu) / sigma, from the manifest), as the SZ paper's
DeepPlanck models do, so our own SZ ensembles and the published ones share this step.
"""

from __future__ import annotations

from collections.abc import Sequence

from survey_mass.constants import PLANCK_PIXEL, SZ_GRID
from survey_mass.preprocess.batch import Prepared, prepare_batch
from survey_mass.preprocess.resample import GridSpec
from survey_mass.sources.base import Cutout

VERSION = "sz-y-v1"
GRID = GridSpec(npix=SZ_GRID, scale=PLANCK_PIXEL)


def preprocess_sz(cutouts: Sequence[Cutout], xp) -> Prepared:
    """A batch of y-map cutouts -> (N, 96, 96, 1) float32 y on ``xp``, plus failures."""
    return prepare_batch(cutouts, GRID, xp, conserve_flux=False)
