"""The joint mass: a learned combination of the instruments that beats the best of them alone."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from survey_mass.errors import UserError
from survey_mass.infer.joint import JointModel, inverse_variance
from survey_mass.spec.job import parse_job_spec
from survey_mass.spec.universe import UniverseSpec
from survey_mass.train.data import training_clusters
from survey_mass.train.joint import (
    JointSpec,
    fit_joint,
    held_out_comparison,
    weigh_mock_clusters,
)
from survey_mass.zoo.registry import SHIPPED_ZOO, resolve_entry, resolve_models

from support.shards import weigh_in_process

INSTRUMENTS = ["xray", "sz", "optical"]
SPEC = JointSpec(
    ensemble="joint-test",
    out="unused",
    members={"xray": "xray-v1", "sz": "sz-v1", "optical": "optical-v1"},
)


def synthetic_table(n: int, seed: int) -> pd.DataFrame:
    """Three mass proxies as the mock's CNNs behave: one sharp, two shrunk towards the mean, one
    with errors shared with the other, and one with no information above z = 0.4."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(14.0, 15.0, n)
    z = rng.uniform(0.05, 0.9, n)
    shared = rng.normal(0, 0.08, n)
    sz = 14.5 + 0.6 * (truth - 14.5) + shared + rng.normal(0, 0.04, n)
    sz = np.where(z > 0.4, 14.4 + rng.normal(0, 0.003, n), sz)  # blind: predicts its mean
    return pd.DataFrame(
        {
            "target_id": [f"T{i}" for i in range(n)],
            "z": z,
            "log10_m500": truth,
            "m_xray": truth - 0.03 + rng.normal(0, 0.06, n),
            "s_xray": np.full(n, 0.05),
            "m_sz": sz,
            "s_sz": np.full(n, 0.1),
            "m_optical": 14.5 + 0.5 * (truth - 14.5) + 0.8 * shared + rng.normal(0, 0.05, n),
            "s_optical": np.full(n, 0.1),
        }
    )


def test_learned_combination_beats_each_proxy_and_the_inverse_variance_mean():
    table = synthetic_table(3000, seed=1)
    c = held_out_comparison(table, INSTRUMENTS, SPEC)
    assert abs(c["joint"]["bias"]) < 0.005  # the X-ray proxy's -0.03 is recalibrated away
    for inst in INSTRUMENTS:
        assert c["joint"]["scatter"] < c["alone_recalibrated"][inst]["scatter"]
    assert c["joint"]["mae"] < c["inverse_variance"]["mae"]
    assert c["beats_best_single"]
    assert c["joint"]["coverage_68"] == pytest.approx(0.6827, abs=0.03)
    assert c["joint"]["coverage_95"] == pytest.approx(0.9545, abs=0.03)


def test_recalibration_undoes_shrinkage_and_an_uninformative_instrument_is_left_out():
    params = fit_joint(synthetic_table(3000, seed=2), INSTRUMENTS, SPEC.z_bins)
    low, high = params.bins[0], params.bins[-1]
    assert low.recalibration["sz"][1] == pytest.approx(1 / 0.6, rel=0.25)  # slope undoes 0.6
    assert low.correlation[1, 2] > 0.3  # the shared error between SZ and optical is learned
    assert "sz" not in high.instruments and "xray" in high.instruments


def test_a_cluster_missing_instruments_uses_those_it_has():
    params = fit_joint(synthetic_table(2000, seed=3), INSTRUMENTS, SPEC.z_bins)
    z = np.array([0.1, 0.1, 0.1])
    means = {
        "xray": np.array([14.5, np.nan, np.nan]),
        "sz": np.array([14.5, 14.5, np.nan]),
        "optical": np.array([14.5, 14.5, np.nan]),
    }
    sigmas = {k: np.full(3, 0.1) for k in means}
    got = params.combine(z, means, sigmas)
    assert np.isfinite(got.log10_m500[:2]).all() and np.isnan(got.log10_m500[2])
    assert got.sigma[1] > got.sigma[0]  # without the X-ray mass the mass is less sure
    assert (got.half_width_95 > got.sigma)[:2].all()
    # above z 0.4 the bin leaves SZ out (blind there): an SZ-only cluster keeps its own mass
    alone = params.combine(np.array([0.6]), {"sz": np.array([14.4])}, {"sz": np.array([0.1])})
    assert alone.log10_m500[0] == pytest.approx(14.4) and alone.sigma[0] == pytest.approx(0.1)


def test_a_malformed_training_spec_is_a_clear_error_naming_the_file(tmp_path):
    from survey_mass.errors import JobSpecError
    from survey_mass.train.joint import load_joint_spec

    spec = tmp_path / "joint.toml"
    spec.write_text("[joint\nensemble = 'x'\n")
    with pytest.raises(JobSpecError, match=r"joint\.toml: not valid TOML"):
        load_joint_spec(spec)


def test_inverse_variance_mean_ignores_missing_masses():
    got = inverse_variance(
        {"xray": np.array([14.0, np.nan]), "sz": np.array([14.3, 14.3])},
        {"xray": np.array([0.1, 0.1]), "sz": np.array([0.1, 0.2])},
    )
    np.testing.assert_allclose(got.log10_m500, [14.15, 14.3])
    np.testing.assert_allclose(got.sigma, [0.1 / np.sqrt(2), 0.2])


JOB = """
name = "joint"
instruments = {instruments}
[targets]
footprint = {{ kind = "cone", ra = 10.0, dec = 0.0, radius_deg = 0.5 }}
[models]
{models}
[output]
url = "{url}"
"""


def _paths(tmp_path, instruments='["xray", "sz", "optical"]', models=""):
    models = models.replace("ZOO", str(tmp_path))
    spec = parse_job_spec(JOB.format(instruments=instruments, models=models, url=tmp_path))
    return resolve_models(spec.models, spec.instruments).entries


def test_jobs_use_the_shipped_joint_model_only_for_the_ensembles_it_was_fitted_on(tmp_path):
    copy = tmp_path / "sz-copy"  # same bytes, another entry: the joint model must not trust it
    shutil.copytree(SHIPPED_ZOO / "sz-v1", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "ensemble": "sz-copy"}))
    assert "joint" in _paths(tmp_path)
    assert "joint" in _paths(tmp_path, '["xray"]')  # its single-instrument recalibration
    assert "joint" not in _paths(tmp_path, models='joint = "inverse-variance"')
    other = 'sz = "sz-copy"\nzoo = "ZOO"'
    assert "joint" not in _paths(tmp_path, models=other)  # auto: falls back, never misapplies
    with pytest.raises(UserError, match=r"models.joint = 'joint-v1' cannot combine.*sz-copy@"):
        _paths(tmp_path, models=other + '\njoint = "joint-v1"')


@pytest.fixture(scope="module")
def fresh_clusters():
    """Mock clusters of a seed no ensemble and not the joint model's fit ever saw, weighed by the
    shipped ensembles through the pipeline's own path."""
    joint = JointModel(resolve_entry("joint-v1"))
    universe = UniverseSpec(seed=5005, z_max=0.6)  # the fit's population where all three apply
    truth = training_clusters(universe, 240)
    table, versions = weigh_mock_clusters(universe, truth, SPEC.members, progress=False)
    assert joint.mismatch(versions) == []
    return joint, table


def test_shipped_joint_model_beats_the_best_single_instrument_on_fresh_clusters(fresh_clusters):
    joint, table = fresh_clusters
    truth, z = table["log10_m500"].to_numpy(), table["z"].to_numpy()
    means = {i: table[f"m_{i}"].to_numpy() for i in INSTRUMENTS}
    sigmas = {i: table[f"s_{i}"].to_numpy() for i in INSTRUMENTS}
    assert np.isfinite(np.stack(list(means.values()))).all()  # every cluster has all three

    def rms(pred):
        return float(np.sqrt(np.mean((pred - truth) ** 2)))

    combined = joint.combine(z, means, sigmas)
    raw = {i: rms(means[i]) for i in INSTRUMENTS}
    alone = {i: rms(joint.combine(z, {i: means[i]}, {i: sigmas[i]}).log10_m500) for i in means}
    best = min(raw, key=raw.get)
    assert best == "xray"
    assert rms(combined.log10_m500) < raw[best]  # better than any instrument's catalog column
    assert abs(np.mean(combined.log10_m500 - truth)) < 0.01 < abs(np.mean(means[best] - truth))
    # adding the other instruments never costs: no worse than X-ray recalibrated the same way
    # (on 800 fresh clusters they add nothing overall, 1.5% above 2e14 Msun: see the README)
    assert rms(combined.log10_m500) < 1.03 * alone["xray"]
    inside68 = np.abs(combined.log10_m500 - truth) <= combined.sigma
    inside95 = np.abs(combined.log10_m500 - truth) <= combined.half_width_95
    # 240 clusters: coverage is known to +-3 points (1 sigma) at 68%, +-1.4 at 95%
    assert abs(inside68.mean() - 0.6827) < 0.07
    assert abs(inside95.mean() - 0.9545) < 0.04


def test_a_three_instrument_shard_is_weighed_jointly_with_calibrated_intervals(tmp_path):
    """The joint model's own combination (its entries' calibration maps are tested apart)."""
    spec = parse_job_spec(
        JOB.format(
            instruments='["xray", "sz", "optical"]',
            models="calibrated = false",
            url=tmp_path / "out",
        )
        + "[source]\nmock = { seed = 17, z_max = 0.6, density_scale = 10.0 }\n"
    )
    cat, _ = weigh_in_process(spec)
    assert len(cat) >= 5
    assert cat["models"].str.contains("joint-v1@").all()
    assert cat[[f"logm500_{i}" for i in INSTRUMENTS]].notna().all().all()
    # the joint mass is not the inverse-variance mean the catalog had before the joint model
    ivar = inverse_variance(
        {i: cat[f"logm500_{i}"].to_numpy() for i in INSTRUMENTS},
        {i: cat[f"logm500_{i}_sigma"].to_numpy() for i in INSTRUMENTS},
    )
    assert not np.allclose(cat["logm500"], ivar.log10_m500, atol=1e-3)
    half68 = cat["logm500_p84"] - cat["logm500"]
    half95 = cat["logm500_p97_5"] - cat["logm500"]
    np.testing.assert_allclose(half68, cat["logm500_sigma"])
    # the 95%/68% width ratio is one of the joint model's fitted ones (per instrument combination)
    joint_path = resolve_models(spec.models, spec.instruments).joint.path
    fitted = JointModel(joint_path).parameters.interval_scale.values()
    allowed = {round(k95 / k68, 6) for k68, k95 in fitted}
    assert set(np.round((half95 / half68).to_numpy(), 6)) <= allowed
