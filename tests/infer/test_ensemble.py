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


def test_stacked_graph_gives_the_member_by_member_masses_with_and_without_tta(deepplanck_entry):
    ensemble = FoldEnsemble(deepplanck_entry)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1e-5, (11, 96, 96, 1)).astype(np.float32)
    z = np.array([0.05, 0.15, 0.3, 0.9, 0.08, 0.12, 0.25, 0.5, 0.7, 0.35, 0.19])
    for tta in (False, True):
        eager = ensemble.predict(x, z=z, tta=tta, batch_size=4, stacked=False)
        stacked = ensemble.predict(x, z=z, tta=tta, batch_size=4)
        np.testing.assert_allclose(stacked.log10_m500, eager.log10_m500, atol=1e-5, rtol=0)
        np.testing.assert_allclose(stacked.sigma, eager.sigma, atol=1e-5, rtol=0)
    assert {key[1] for key in ensemble._graphs} == {False, True}  # one graph per bin and TTA


def test_tensorflow_dihedral_is_numpys():
    from survey_mass.infer.ensemble import _dihedral_tf
    from survey_mass.preprocess.augment import dihedral
    from survey_mass.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    for k in range(8):
        np.testing.assert_array_equal(
            _dihedral_tf(tf, tf.constant(x), k).numpy(), dihedral(x, k, np)
        )


def test_load_once_builds_an_entry_once_per_process(tmp_path, monkeypatch):
    from survey_mass.infer import ensemble as module

    monkeypatch.setattr(module, "_LOADED", {})
    built = []

    class Entry:
        def __init__(self, path):
            built.append(path)

    first = module.load_once(Entry, tmp_path)
    assert module.load_once(Entry, str(tmp_path / "." / "")) is first  # same resolved path
    assert module.load_once(Entry, tmp_path) is first and built == [tmp_path.resolve()]
