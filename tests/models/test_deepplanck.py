"""The published DeepPlanck models reproduce the published mass of a real Planck cluster."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from astropy.io import fits

from survey_mass.models.deepplanck import (
    ENSEMBLE_NAME,
    MU,
    PREPROCESSING,
    SIGMA,
    DeepPlanckEnsemble,
    load_published_model,
)
from survey_mass.models.sz import z_bin_index
from survey_mass.zoo.manifest import ModelIntegrityError, read_manifest

CLUSTER = "PSZ2G359.07-32.12"
#: Measured independently (PROVENANCE.md): one orientation, and the mean of the 8 dihedral ones.
ONE_ORIENTATION = 14.683
TTA_MEAN = 14.691


@pytest.fixture(scope="module")
def source(shared_data):
    return shared_data / "deepplanck"


@pytest.fixture(scope="module")
def ensemble(source):
    return DeepPlanckEnsemble.from_published(source)


@pytest.fixture(scope="module")
def cutout(source):
    """The real y map (N=1) and its redshift from the FITS header."""
    with fits.open(source / f"{CLUSTER}.fits") as hdul:
        return hdul[0].data.astype(np.float64)[None], np.array([hdul[0].header["Z"]])


@pytest.fixture(scope="module")
def published_mass(source) -> float:
    with open(source / "DeepPlanck.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["cluster"] == f"{CLUSTER}.fits"]
    assert len(rows) == 1
    return float(rows[0]["CNN_mass"])


def test_cutout_falls_in_the_second_bin(cutout):
    _, z = cutout
    assert z[0] == pytest.approx(0.1496, abs=1e-4)
    assert z_bin_index(z).tolist() == [1]


def test_single_orientation_matches_published(ensemble, cutout, published_mass):
    mass, spread = ensemble.predict_log10_m500(*cutout)
    assert mass[0] == pytest.approx(ONE_ORIENTATION, abs=0.002)
    assert abs(mass[0] - published_mass) < 0.05
    assert spread.tolist() == [0.0]


def test_tta_mean_matches_published(ensemble, cutout, published_mass):
    mass, spread = ensemble.predict_log10_m500(*cutout, tta=True)
    assert mass[0] == pytest.approx(TTA_MEAN, abs=0.002)
    assert abs(mass[0] - published_mass) < 0.05
    assert 0.0 < spread[0] < 0.1  # orientations disagree a little, not wildly


def test_each_map_uses_its_own_bin_model(ensemble, cutout):
    """The same map at four redshifts goes through four models with four standardisations."""
    y, _ = cutout
    masses, _ = ensemble.predict_log10_m500(np.repeat(y, 4, axis=0), [0.05, 0.15, 0.3, 0.9])
    assert len(set(np.round(masses, 4))) == 4
    alone, _ = ensemble.predict_log10_m500(y, [0.3])
    assert alone[0] == pytest.approx(masses[2], abs=1e-5)


def test_bad_inputs_are_refused_with_the_reason(ensemble, cutout):
    y, _ = cutout
    with pytest.raises(ValueError, match=r"z\[0\]=0\.0"):
        ensemble.predict_log10_m500(y, [0.0])
    with pytest.raises(ValueError, match="96, 96"):
        ensemble.predict_log10_m500(y[:, :64, :64], [0.15])
    with pytest.raises(ValueError, match="1 maps but 2 redshifts"):
        ensemble.predict_log10_m500(y, [0.15, 0.2])


def test_zoo_entry_round_trip_and_tamper(ensemble, cutout, tmp_path):
    entry = ensemble.save_as_zoo_entry(tmp_path / "deepplanck")
    manifest = read_manifest(entry)
    assert manifest["ensemble"] == ENSEMBLE_NAME and manifest["instrument"] == "sz"
    assert manifest["inputs"]["shape"] == [96, 96, 1]
    assert manifest["preprocessing"] == PREPROCESSING and manifest["combine"] == "by_z_bin"
    assert manifest["standardisation"]["mu"] == list(MU)
    assert manifest["standardisation"]["sigma"] == list(SIGMA)
    assert manifest["output"] == "log10 M500c [Msun]"
    assert "arXiv:2209.10333" in manifest["source"]["paper"]
    assert "PROVENANCE.md" in manifest["source"]["provenance"]
    assert len(manifest["members"]) == 4 and all(
        len(m["sha256"]) == 64 for m in manifest["members"]
    )

    loaded = DeepPlanckEnsemble.from_zoo(entry)
    for tta in (False, True):
        np.testing.assert_array_equal(
            loaded.predict_log10_m500(*cutout, tta=tta)[0],
            ensemble.predict_log10_m500(*cutout, tta=tta)[0],
        )

    target = entry / manifest["members"][1]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="deepplanck-bin2.keras") as err:
        DeepPlanckEnsemble.from_zoo(entry)
    assert manifest["members"][1]["sha256"] in str(err.value)


def test_weights_of_another_architecture_are_refused(tmp_path):
    """Shapes are checked layer by layer: a 5x5 first kernel is named, not silently reshaped."""
    shapes = [
        ((5, 5, 1, 16), 16),
        ((3, 3, 16, 32), 32),
        ((3, 3, 32, 64), 64),
        ((64, 200), 200),
        ((200, 100), 100),
        ((100, 20), 20),
        ((20, 1), 1),
    ]
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        names = [f"layer{i}" for i in range(len(shapes))]
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name, (kernel, bias) in zip(names, shapes, strict=True):
            group = f.create_group(name)
            group.attrs["weight_names"] = np.array([b"m/kernel:0", b"m/bias:0"])
            group["m/kernel:0"] = np.zeros(kernel, np.float32)
            group["m/bias:0"] = np.zeros(bias, np.float32)
    with pytest.raises(ValueError, match=r"layer0.*\(5, 5, 1, 16\).*conv1"):
        load_published_model(path)
