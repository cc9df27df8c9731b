"""The Eddington expectation: analytic cases, and the bias table of an honest estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from survey_mass.validate.eddington import bias_plot, bias_table, expected_estimate, prior_density

SLOPE = 2.5  # dN/dlog10M ~ 10^(-SLOPE log10 M): a mass function's local slope


def exponential_population(n: int = 200_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = 13.9 + rng.exponential(1 / (SLOPE * np.log(10)), n)
    return m[m < 15.4]


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.15])
def test_an_exponential_prior_shifts_every_estimate_by_slope_ln10_sigma2(sigma):
    prior = prior_density(exponential_population())
    mu = np.array([14.6, 14.8])  # four sigma above the population's floor: no truncation
    shift = expected_estimate(mu, prior, sigma) - mu
    assert shift == pytest.approx(-SLOPE * np.log(10) * sigma**2, abs=0.01)


def test_a_gaussian_prior_shrinks_towards_its_mean():
    population = np.random.default_rng(1).normal(14.3, 0.2, 200_000)
    shift = expected_estimate(np.array([14.7]), prior_density(population), 0.2)[0] - 14.7
    assert shift == pytest.approx(0.5 * (14.3 - 14.7), abs=0.02)


def frame(estimate: str, sigma: float = 0.15, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = exponential_population(100_000, seed)
    observed = truth + sigma * rng.standard_normal(truth.size)
    values = {
        "unbiased": observed,  # unbiased against truth: not a posterior median
        "posterior": observed - SLOPE * np.log(10) * sigma**2,  # the exponential prior's median
    }[estimate]
    return pd.DataFrame(
        {
            "z": rng.uniform(0.2, 0.39, truth.size),  # one z bin: one prior, one sigma
            "log10_m500": truth,
            "logm500_sz": values,
            "logm500_sz_sigma": np.full(truth.size, sigma),
        }
    )


def test_a_posterior_median_estimator_follows_the_expectation_and_an_unbiased_one_does_not():
    honest = {r["bin"]: r for r in bias_table(frame("posterior"), "sz") if r["n"] > 150}
    naive = {r["bin"]: r for r in bias_table(frame("unbiased"), "sz") if r["n"] > 150}
    for name in ("log M 14.5-14.8", "log M 14.8-15.1"):  # far from the floor: exact medians
        assert honest[name]["median_dex"] == pytest.approx(honest[name]["eddington_dex"], abs=0.02)
        assert naive[name]["median_dex"] == pytest.approx(0.0, abs=0.02)
        assert naive[name]["eddington_dex"] < -0.1  # the expectation is the same for both
    png = bias_plot(frame("posterior"), {"sz": bias_table(frame("posterior"), "sz")})
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
