"""Inference through zoo entries: the published DeepPlanck models routed by redshift bin."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from survey_mass.cli import main
from survey_mass.infer.ensemble import FoldEnsemble


@pytest.fixture(scope="module")
def deepplanck_entry(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo") / "deepplanck"
    assert (
        main(["zoo", "deepplanck", "--source", str(shared_data / "deepplanck"), "--out", str(out)])
        == 0
    )
    return out


def test_deepplanck_entry_weighs_the_real_planck_cutout_through_the_generic_ensemble(
    deepplanck_entry, shared_data
):
    y = fits.getdata(shared_data / "deepplanck" / "PSZ2G359.07-32.12.fits").astype(np.float32)
    ensemble = FoldEnsemble(deepplanck_entry)
    pred = ensemble.predict(y[None, :, :, None], z=np.array([0.1496]))
    assert pred.log10_m500[0] == pytest.approx(14.683, abs=0.002)  # PROVENANCE.md, one orientation
    tta = ensemble.predict(y[None, :, :, None], z=np.array([0.1496]), tta=True)
    assert tta.log10_m500[0] == pytest.approx(14.691, abs=0.002)  # mean of the 8 orientations


def test_targets_outside_every_redshift_bin_get_no_mass(deepplanck_entry):
    ensemble = FoldEnsemble(deepplanck_entry)
    pred = ensemble.predict(np.zeros((3, 96, 96, 1), np.float32), z=np.array([0.05, 1.4, 0.5]))
    assert np.isfinite(pred.log10_m500[[0, 2]]).all() and np.isnan(pred.log10_m500[1])
    with pytest.raises(ValueError, match="pass z"):
        ensemble.predict(np.zeros((1, 96, 96, 1), np.float32))
