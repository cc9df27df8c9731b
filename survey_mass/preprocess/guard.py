"""Model-ready batches: a preprocessed batch keeps only rows a model can take.

Whatever a preprocessor did not foresee (an extra band, a header value that is not a number) costs
that cutout's row, quarantined with the reason, never its batch or its shard.
"""

from __future__ import annotations

import numpy as np

from survey_mass.preprocess import PREPROCESSORS
from survey_mass.preprocess.batch import Prepared
from survey_mass.sources.base import Cutout, CutoutFailure
from survey_mass.xp import to_numpy

NONFINITE_DETAIL = "preprocessing gave NaN/inf pixels: check the header values it uses (EXPOSURE)"


def _prepare_each(prepare, cutouts: list[Cutout], xp) -> list[Prepared]:
    """The batch prepared at once or, should that raise, each cutout alone."""
    try:
        return [prepare(cutouts, xp)]
    except Exception:
        parts = []
        for c in cutouts:
            try:
                parts.append(prepare([c], xp))
            except Exception as err:
                failure = CutoutFailure(
                    c.target, c.instrument, "preprocessing_error", f"{type(err).__name__}: {err}"
                )
                parts.append(Prepared(None, [], [failure]))
        return parts


def _checked(part: Prepared, shape: tuple, model: str, xp) -> tuple[object, list, list]:
    """(inputs, cutouts, failures) of one part: rows of the model's shape with finite pixels."""
    if tuple(part.inputs.shape[1:]) != shape:
        detail = f"model input {tuple(part.inputs.shape[1:])}, {model} takes {shape}"
        return (
            None,
            [],
            [CutoutFailure(c.target, c.instrument, "bad_shape", detail) for c in part.cutouts],
        )
    finite = to_numpy(xp.isfinite(part.inputs.reshape(len(part.cutouts), -1)).all(axis=1))
    failures = [
        CutoutFailure(c.target, c.instrument, "nonfinite_input", NONFINITE_DETAIL)
        for c, ok in zip(part.cutouts, finite, strict=True)
        if not ok
    ]
    kept = [c for c, ok in zip(part.cutouts, finite, strict=True) if ok]
    if finite.all():
        return part.inputs, kept, failures
    if finite.any():
        return part.inputs[xp.asarray(np.flatnonzero(finite))], kept, failures
    return None, kept, failures


def prepare_for_model(
    preprocessing: str, shape: tuple, model: str, cutouts: list[Cutout], xp
) -> Prepared:
    """The batch preprocessed the way ``model`` was trained, keeping only model-ready rows: the
    model's input ``shape`` (H, W, C), all pixels finite."""
    inputs, kept, failures = [], [], []
    for part in _prepare_each(PREPROCESSORS[preprocessing], cutouts, xp):
        failures += part.failures
        if not part.cutouts:
            continue
        x, ok, bad = _checked(part, shape, model, xp)
        failures += bad
        kept += ok
        if x is not None:
            inputs.append(x)
    if not inputs:
        return Prepared(xp.zeros((0, *shape), dtype=xp.float32), [], failures)
    return Prepared(inputs[0] if len(inputs) == 1 else xp.concatenate(inputs), kept, failures)
