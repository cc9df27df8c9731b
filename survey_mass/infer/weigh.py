"""``weigh``: the one path from targets to one instrument's masses (jobs and the joint fit use it).

fetch (guarded per target) -> preprocess (guarded per cutout) -> the fold ensemble, batch by batch.
"""

from __future__ import annotations

import numpy as np

from survey_mass.infer.ensemble import FoldEnsemble
from survey_mass.infer.sz_snr import matched_filter_snr
from survey_mass.preprocess.batch import Prepared
from survey_mass.preprocess.guard import prepare_for_model
from survey_mass.sources.base import Cutout, CutoutFailure, Source, Target, fetch_guarded

#: instruments whose model inputs also give a detection S/N, and its function of (inputs, xp)
SNR_OF_INPUTS = {"sz": matched_filter_snr}


def prepare(ensemble: FoldEnsemble, cutouts: list[Cutout], xp) -> Prepared:
    """The cutouts preprocessed for ``ensemble``: model-ready rows, the rest as failures."""
    return prepare_for_model(
        ensemble.preprocessing, ensemble.input_shape, ensemble.name, cutouts, xp
    )


def _outside_bins(cutout: Cutout, ensemble: FoldEnsemble) -> CutoutFailure:
    detail = f"z = {cutout.target.z:.3f} is outside the redshift bins of {ensemble.name}"
    return CutoutFailure(cutout.target, cutout.instrument, "redshift_outside_model", detail)


def weigh(
    source: Source,
    ensemble: FoldEnsemble,
    targets: list[Target],
    instrument: str,
    xp,
    batch_size: int,
    tta: bool,
) -> tuple[dict, dict]:
    """(target_id -> (log M, spread, sigma, S/N), target_id -> failure) of one instrument's
    ensemble; S/N is that of :data:`SNR_OF_INPUTS` (SZ: the y map's matched filter), else NaN."""
    results, failures = {}, {}
    for start in range(0, len(targets), batch_size):
        cutouts = []
        for item in fetch_guarded(source, targets[start : start + batch_size], instrument):
            if isinstance(item, CutoutFailure):
                failures[item.target.target_id] = item
            else:
                cutouts.append(item)
        prepared = prepare(ensemble, cutouts, xp)
        failures.update((f.target.target_id, f) for f in prepared.failures)
        if not prepared.cutouts:
            continue
        z = np.array([c.target.z for c in prepared.cutouts])
        pred = ensemble.predict(prepared.inputs, z=z, xp=xp, tta=tta, batch_size=batch_size)
        snr_of = SNR_OF_INPUTS.get(instrument)
        snr = snr_of(prepared.inputs, xp) if snr_of else np.full(len(z), np.nan)
        for i, c in enumerate(prepared.cutouts):
            if np.isnan(pred.log10_m500[i]):
                failures[c.target.target_id] = _outside_bins(c, ensemble)
            else:
                results[c.target.target_id] = (
                    pred.log10_m500[i],
                    pred.spread[i],
                    pred.sigma[i],
                    snr[i],
                )
    return results, failures
