"""Calibration maps: per-bin intervals that cover, the Eddington bias removed, the prior flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from survey_mass.catalog.schema import FLAG_PRIOR
from survey_mass.infer.calibration_map import CalibrationMap, fit_map
from survey_mass.infer.masses import mass_columns


def population(seed: int, n: int = 6000, informative: bool = True):
    """True masses from a steep mass function; an estimate that regresses to the mean (slope
    0.6) with errors its own sigma understates by 2x; or pure noise around the mean."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.03, 1.0, n)
    truth = 13.9 + rng.exponential(0.25, n)
    if informative:
        est = 14.2 + 0.6 * (truth - 14.2) + rng.normal(0, 0.06, n)
    else:
        est = 14.17 + rng.normal(0, 0.03, n)
    sigma = np.full(n, 0.04)
    return z, est, sigma, truth


def coverage(applied, truth, mask) -> tuple[float, float]:
    delta = np.abs(applied.log10_m500[mask] - truth[mask])
    return (
        float(np.mean(delta <= applied.sigma[mask])),
        float(np.mean(delta <= applied.half_width_95[mask])),
    )


def test_fresh_clusters_are_covered_as_nominal_in_every_z_bin_and_estimate_quartile():
    cmap = CalibrationMap(fit_map(*population(1), fitted_on={"seed": 1}))
    z, est, sigma, truth = population(2)  # another draw: what a job meets
    applied = cmap.apply(z, est, sigma)
    assert not applied.prior.any()
    raw = np.mean(np.abs(est - truth) <= sigma)
    assert raw < 0.4  # the model's own sigma is far too small
    for lo, hi in ((0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 1.0)):
        in_z = (z >= lo) & (z < hi)
        edges = np.quantile(applied.log10_m500[in_z], [0, 0.25, 0.5, 0.75, 1])
        for q in range(4):
            cell = in_z & (applied.log10_m500 >= edges[q]) & (applied.log10_m500 <= edges[q + 1])
            c68, c95 = coverage(applied, truth, cell)
            assert c68 == pytest.approx(0.683, abs=0.12) and c95 == pytest.approx(0.95, abs=0.06)
    # the regression to the mean is undone where users select: among the highest estimates
    top = applied.log10_m500 > np.quantile(applied.log10_m500, 0.9)
    raw_top = est > np.quantile(est, 0.9)
    assert abs(np.median(applied.log10_m500[top] - truth[top])) < 0.03
    assert np.median(est[raw_top] - truth[raw_top]) < -0.1


def test_an_estimate_that_is_nearly_a_constant_reports_the_prior_and_a_flag():
    cmap = CalibrationMap(fit_map(*population(3, informative=False), fitted_on={"seed": 3}))
    z, est, sigma, truth = population(4, informative=False)
    applied = cmap.apply(z, est, sigma)
    assert applied.prior.all()
    c68, c95 = coverage(applied, truth, np.ones(len(z), bool))
    assert c68 == pytest.approx(0.68, abs=0.06) and c95 == pytest.approx(0.95, abs=0.03)


def test_an_uninformative_instrument_is_flagged_and_gets_no_weight_in_the_joint_mass():
    z, est, sigma, truth = population(5, n=40, informative=False)
    noise_map = CalibrationMap(fit_map(*population(6, informative=False), fitted_on={}))
    rows = pd.DataFrame({"target_id": [f"c{i}" for i in range(40)], "z": z})
    good = {t: (m, 0.01, 0.05, np.nan) for t, m in zip(rows["target_id"], truth, strict=True)}
    bad = {t: (m, 0.01, 0.05, np.nan) for t, m in zip(rows["target_id"], est, strict=True)}
    cat = mass_columns(rows, {"xray": good, "sz": bad}, None, {"sz": noise_map})
    assert (cat["flags"] & FLAG_PRIOR["sz"]).all() and not (cat["flags"] & FLAG_PRIOR["xray"]).any()
    np.testing.assert_allclose(cat["logm500"], truth)  # the joint mass is the X-ray mass alone
    assert (cat["logm500_sz_half95"] > cat["logm500_sz_sigma"]).all()


def test_a_redshift_bin_without_calibration_clusters_borrows_its_neighbours_map():
    z, est, sigma, truth = population(7)
    z = np.where(z < 0.1, 0.15, z)  # no calibration cluster below z 0.1
    data = fit_map(z, est, sigma, truth, fitted_on={})
    assert data["z_bins"][0]["borrowed_from"] == [0.1, 0.2]
    applied = CalibrationMap(data).apply(np.array([0.05]), np.array([14.3]), np.array([0.04]))
    assert np.isfinite(applied.log10_m500).all()  # a low-z cluster keeps its mass


def test_a_stratified_sample_gives_the_mass_functions_map_with_a_measured_massive_end():
    """Massive clusters drawn from a 10x wider sky at weight 0.1 give the map of the plain
    sample (the same prior), and its top cells are measured on ten times as many clusters."""
    z, est, sigma, truth = population(8, n=20_000)
    plain = CalibrationMap(fit_map(z, est, sigma, truth, fitted_on={}))
    keep = truth < 14.5
    wz, west, wsig, wtruth = population(9, n=200_000)
    rare = wtruth >= 14.5
    weight = np.concatenate([np.ones(keep.sum()), np.full(rare.sum(), 0.1)])
    data = fit_map(
        np.concatenate([z[keep], wz[rare]]),
        np.concatenate([est[keep], west[rare]]),
        np.concatenate([sigma[keep], wsig[rare]]),
        np.concatenate([truth[keep], wtruth[rare]]),
        fitted_on={},
        weight=weight,
    )
    stratified = CalibrationMap(data)
    zf, ef, sf, tf = population(10, n=20_000)
    a, b = plain.apply(zf, ef, sf), stratified.apply(zf, ef, sf)
    bulk = ef < np.quantile(ef, 0.75)
    assert np.percentile(np.abs(a.log10_m500[bulk] - b.log10_m500[bulk]), 99) < 0.03  # same prior
    top = tf >= 14.6  # the massive end, median error at fixed true mass, Eddington-limited
    assert abs(np.median(b.log10_m500[top] - tf[top])) < 0.1
    assert [c["n"] for c in data["z_bins"][3]["cells"]][-1] > 3 * [
        c["n"] for c in plain.data["z_bins"][3]["cells"]
    ][-1]


def tail_only_population(seed: int, n: int, massive_n: int):
    """A stratified sample whose estimate is a constant for the bulk and tracks the mass only in
    the massive tail (sz-v2 at z 0.2-0.4: Planck sees only the most massive clusters there)."""
    rng = np.random.default_rng(seed)
    truth = np.concatenate(
        [13.9 + rng.exponential(0.2, n), 14.5 + rng.exponential(0.15, massive_n)]
    )
    weight = np.concatenate([np.ones(n), np.full(massive_n, 0.05)])
    keep = (truth < 14.5) | (weight < 1)
    truth, weight = truth[keep], weight[keep]
    est = np.where(
        truth < 14.5,
        14.25 + rng.normal(0, 0.005, len(truth)),
        14.27 + 0.9 * (truth - 14.5) + rng.normal(0, 0.04, len(truth)),
    )
    return np.full(len(truth), 0.3), est, np.full(len(truth), 0.25), truth, weight


def test_an_instrument_that_weighs_only_the_massive_tail_is_informative_there():
    z, est, sigma, truth, weight = tail_only_population(11, 3000, 600)
    cmap = CalibrationMap(fit_map(z, est, sigma, truth, fitted_on={}, weight=weight))
    z, est, sigma, truth, _ = tail_only_population(12, 3000, 600)
    applied = cmap.apply(z, est, sigma)
    tail = est > 14.32  # estimates only the massive clusters reach
    assert not applied.prior[tail].any()
    assert abs(np.median(applied.log10_m500[tail] - truth[tail])) < 0.03
    assert np.mean(np.abs(applied.log10_m500[tail] - truth[tail]) <= applied.sigma[tail]) > 0.6
    assert np.median(applied.sigma[tail]) < 0.5 * cmap.bins[3]["prior"]["half68"]


def snr_population(seed: int, n: int = 8000):
    """A y-map CNN's estimate that tracks the mass only where the cluster shows in the map (the
    tail), with noise that puts many bulk clusters among the tail's estimates, and the map's S/N
    (growing as M^1.6): the S/N tells the clusters in the map from the bulk."""
    z, _, sigma, truth = population(seed, n, informative=False)
    rng = np.random.default_rng(seed + 100)
    est = 14.17 + 0.9 * np.maximum(truth - 14.4, 0) + rng.normal(0, 0.1, n)
    snr = 4.0 * 10 ** (1.6 * (truth - 14.5)) + rng.normal(0, 1, n)
    return z, est, sigma, truth, snr


def test_a_map_cut_by_snr_weighs_the_detections_that_the_estimate_alone_cannot():
    z, est, sigma, truth, snr = snr_population(11)
    plain = CalibrationMap(fit_map(z, est, sigma, truth, fitted_on={}))
    by_snr = CalibrationMap(fit_map(z, est, sigma, truth, fitted_on={}, snr=snr))
    assert all("snr_classes" in b for b in by_snr.bins)
    z, est, sigma, truth, snr = snr_population(12)  # fresh clusters
    detected = snr >= 4.5
    # cells of the estimate alone: most detections get the prior, which misses them
    unsplit = plain.apply(z, est, sigma, snr)
    assert unsplit.prior[detected].mean() > 0.8 and coverage(unsplit, truth, detected)[0] < 0.3
    applied = by_snr.apply(z, est, sigma, snr)
    assert applied.prior[detected].mean() < 0.05
    c68, c95 = coverage(applied, truth, detected)
    assert c68 == pytest.approx(0.683, abs=0.05) and c95 == pytest.approx(0.95, abs=0.03)
    assert abs(np.median(applied.log10_m500[detected] - truth[detected])) < 0.03
    # below S/N 4.5 the estimate adds nothing: the prior of the class (mass function given the
    # S/N), flagged, and it covers
    assert applied.prior[~detected].all()
    c68, c95 = coverage(applied, truth, ~detected)
    assert c68 == pytest.approx(0.683, abs=0.05) and c95 == pytest.approx(0.95, abs=0.03)
    # a row without an S/N gets the bin's map over every S/N
    no_snr = by_snr.apply(z, est, sigma, np.full(len(z), np.nan))
    np.testing.assert_array_equal(no_snr.log10_m500, unsplit.log10_m500)


def test_detections_beyond_where_the_estimate_saturates_are_weighed_by_their_snr():
    """A CNN whose estimate stops growing above 10^14.7 (as sz-v2's does): among detections,
    the map's estimate mixes in log10 S/N, so the most massive are not given the class prior."""
    z, _, sigma, truth, snr = snr_population(13, n=20_000)
    rng = np.random.default_rng(14)
    est = 14.17 + 0.9 * np.clip(truth - 14.4, 0, 0.3) + rng.normal(0, 0.05, len(z))
    data = fit_map(z, est, sigma, truth, fitted_on={}, snr=snr)
    detected_class = data["z_bins"][3]["snr_classes"][1]
    assert detected_class["snr"] == [4.5, None] and detected_class["mix"][1] > 0.3
    z, _, sigma, truth, snr = snr_population(15, n=20_000)
    est = 14.17 + 0.9 * np.clip(truth - 14.4, 0, 0.3) + rng.normal(0, 0.05, len(z))
    applied = CalibrationMap(data).apply(z, est, sigma, snr)
    top = snr > np.quantile(snr, 0.995)  # far above where the estimate saturates
    assert np.median(truth[top]) > 14.9
    assert abs(np.median(applied.log10_m500[top] - truth[top])) < 0.05
    assert not applied.prior[top].any()


def test_detections_keep_their_mass_where_the_ensemble_spread_widens():
    """Where the CNN saturates its members disagree (sz-v2's spread grows at the top), but the
    S/N still carries the mass: the detections' cells are scaled by their residuals, not by that
    spread, so the brightest keep an informative mass and the class covers as nominal (scaled by
    the spread, the top cell, a few dozen clusters that borrow their neighbours' scale, gave 15%
    of them the class prior)."""

    def saturating(seed):
        z, _, sigma, truth, snr = snr_population(seed)
        rng = np.random.default_rng(seed + 1)
        est = 14.17 + 0.9 * np.clip(truth - 14.4, 0, 0.3) + rng.normal(0, 0.05, len(z))
        return z, est, sigma * np.where(truth > 14.8, 4.0, 1.0), truth, snr

    z, est, sigma, truth, snr = saturating(21)
    cmap = CalibrationMap(fit_map(z, est, sigma, truth, fitted_on={}, snr=snr))
    z, est, sigma, truth, snr = saturating(23)  # fresh clusters
    applied = cmap.apply(z, est, sigma, snr)
    top = snr > np.quantile(snr, 0.995)
    assert not applied.prior[top].any()
    assert abs(np.median(applied.log10_m500[top] - truth[top])) < 0.05
    c68, c95 = coverage(applied, truth, snr >= 4.5)
    assert c68 == pytest.approx(0.683, abs=0.05) and c95 == pytest.approx(0.95, abs=0.03)
