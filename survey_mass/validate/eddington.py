"""Bias against true mass, and what an honest estimator is expected to show there (Eddington).

A calibrated estimate is a posterior median: given the estimate, the true mass is as likely above
as below it. Against *true* mass the same estimator must then be biased: the mass function makes
small clusters common, so a massive cluster's estimate is pulled down towards where most clusters
are, and more so the wider the likelihood. That pull is the Eddington expectation. For a
likelihood of width sigma (here each z bin's median catalog 1-sigma) and the population's prior
(the histogram of the true masses of the same z bin), the expected estimate at true mass mu is

    E[ median of p(m | x) ],  x ~ N(mu, sigma),  p(m | x) ~ prior(m) N(x | m, sigma),

computed on a grid with Gauss-Hermite quadrature over x. A measured bias that follows this curve
is what an honest, informative-where-it-can-be estimator looks like; a slope of estimate on truth
below the curve's slope is information lost beyond what the noise explains.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from survey_mass.constants import Z_BINS

#: true-mass bins of the bias table and plot [log10 Msun]
TRUE_MASS_EDGES = (13.9, 14.2, 14.5, 14.8, 15.1, 15.4)
_GRID = np.arange(13.0, 16.2, 0.01)
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def prior_density(true_log_mass: np.ndarray, smooth_dex: float = 0.03) -> np.ndarray:
    """The population's density of true log mass on the grid, Gaussian-smoothed, normalised."""
    edges = np.append(_GRID - 0.005, _GRID[-1] + 0.005)
    counts, _ = np.histogram(true_log_mass, bins=edges)
    kernel_x = np.arange(-4 * smooth_dex, 4 * smooth_dex + 1e-9, 0.01)
    kernel = np.exp(-0.5 * (kernel_x / smooth_dex) ** 2)
    density = np.convolve(counts.astype(float), kernel / kernel.sum(), mode="same")
    return density / density.sum()


def expected_estimate(mu: np.ndarray, prior: np.ndarray, sigma: float) -> np.ndarray:
    """E[posterior median] at each true log mass ``mu`` for a Gaussian likelihood of ``sigma``
    (computed every 0.02 dex and interpolated: the curve is smooth)."""
    mu = np.asarray(mu, float)
    nodes = np.arange(mu.min() - 0.02, mu.max() + 0.04, 0.02)
    return np.interp(mu, nodes, _expected_on(nodes, prior, sigma))


def _expected_on(mu: np.ndarray, prior: np.ndarray, sigma: float) -> np.ndarray:
    x = mu[:, None] + sigma * _NODES[None, :]  # (n_mu, n_nodes) observations
    like = np.exp(-0.5 * ((x[..., None] - _GRID) / sigma) ** 2)  # (n_mu, n_nodes, grid)
    post = like * prior
    cdf = np.cumsum(post, axis=-1)
    cdf /= np.maximum(cdf[..., -1:], 1e-300)
    median_index = np.argmax(cdf >= 0.5, axis=-1)
    medians = _GRID[median_index]
    return medians @ _WEIGHTS


def bias_table(joined: pd.DataFrame, est: str) -> list[dict]:
    """Per bin of true mass: n, measured median bias and the Eddington expectation [dex]."""
    column = "logm500" if est == "joint" else f"logm500_{est}"
    sigma_column = f"{column}_sigma"
    frame = joined[np.isfinite(joined[column].to_numpy(float))]
    truth = frame["log10_m500"].to_numpy(float)
    expected = np.full(len(frame), np.nan)
    z = frame["z"].to_numpy(float)
    for lo, hi in Z_BINS:
        inside = (z >= lo) & (z < hi)
        if inside.sum() < 10:
            continue
        sigma = float(np.nanmedian(frame[sigma_column].to_numpy(float)[inside]))
        if not np.isfinite(sigma):  # no quoted sigma: no expectation to draw
            continue
        prior = prior_density(truth[inside])
        expected[inside] = expected_estimate(truth[inside], prior, max(sigma, 0.01))
    rows = []
    delta = frame[column].to_numpy(float) - truth
    for lo, hi in zip(TRUE_MASS_EDGES[:-1], TRUE_MASS_EDGES[1:], strict=True):
        inside = (truth >= lo) & (truth < hi)
        n = int(inside.sum())
        expected_in = (expected - truth)[inside & np.isfinite(expected)]
        rows.append(
            {
                "bin": f"log M {lo:.1f}-{hi:.1f}",
                "lo": lo,
                "hi": hi,
                "n": n,
                "median_dex": float(np.median(delta[inside])) if n else math.nan,
                "p16_dex": float(np.percentile(delta[inside], 16)) if n else math.nan,
                "p84_dex": float(np.percentile(delta[inside], 84)) if n else math.nan,
                "eddington_dex": float(expected_in.mean()) if expected_in.size else math.nan,
            }
        )
    return rows


def bias_markdown(tables: dict[str, list[dict]], fmt) -> list[str]:
    """One table: per true-mass bin, each estimate's median bias / Eddington expectation."""
    ests = list(tables)
    if not ests:
        return []
    lines = [
        "**Bias against true mass**: measured median / Eddington expectation of a calibrated "
        "estimator with the catalog's 1-sigma and the mass-function prior [dex]",
        "",
        "| true mass bin | " + " | ".join(ests) + " |",
        "|---|" + "---|" * len(ests),
    ]
    for i, row in enumerate(tables[ests[0]]):
        cells = []
        for est in ests:
            r = tables[est][i]
            cells.append(
                f"{fmt(r['median_dex'])} / {fmt(r['eddington_dex'])} ({r['n']})" if r["n"] else "-"
            )
        lines.append(f"| {row['bin']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def bias_plot(joined: pd.DataFrame, tables: dict[str, list[dict]]) -> bytes:
    """Per estimate: estimate vs truth (top) and bias vs truth with the expectation (bottom)."""
    from survey_mass.validate.plots import plt, to_png

    ests = list(tables)
    fig, axes = plt.subplots(2, len(ests), figsize=(3.6 * len(ests), 6.6), squeeze=False)
    for k, est in enumerate(ests):
        column = "logm500" if est == "joint" else f"logm500_{est}"
        ok = np.isfinite(joined[column].to_numpy(float))
        truth = joined["log10_m500"].to_numpy(float)[ok]
        value = joined[column].to_numpy(float)[ok]
        top, bottom = axes[0, k], axes[1, k]
        top.scatter(truth, value, s=3, alpha=0.3, color="tab:blue", rasterized=True)
        top.plot([13.9, 15.4], [13.9, 15.4], color="k", lw=0.8)
        top.set(
            title=est,
            xlabel="true log10 M500 [Msun]",
            ylabel="estimated log10 M500 [Msun]",
            xlim=(13.85, 15.45),
            ylim=(13.5, 15.6),
        )
        rows = [r for r in tables[est] if r["n"]]
        centres = [(r["lo"] + r["hi"]) / 2 for r in rows]
        bottom.axhline(0.0, color="k", lw=0.8)
        bottom.fill_between(
            centres,
            [r["p16_dex"] for r in rows],
            [r["p84_dex"] for r in rows],
            color="tab:blue",
            alpha=0.25,
            label="16-84%",
        )
        bottom.plot(
            centres, [r["median_dex"] for r in rows], "o-", color="tab:blue", label="median"
        )
        bottom.plot(
            centres,
            [r["eddington_dex"] for r in rows],
            "s--",
            color="tab:red",
            label="Eddington expectation",
        )
        bottom.set(xlabel="true log10 M500 [Msun]", ylabel="estimate - truth [dex]", ylim=(-1, 1))
        if k == 0:
            bottom.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return to_png(fig)


def against_truth_figure(joined: pd.DataFrame, estimates, z) -> tuple[str, bytes]:
    """Each estimate and its bias against true mass, beside the Eddington expectation."""
    tables, frame = {}, pd.DataFrame({"z": z, "log10_m500": joined["logm500_ref"]})
    for est in estimates:
        short = "joint" if est == "logm500" else est.removeprefix("logm500_")
        frame[est] = joined[f"{est}_pred"]
        frame[f"{est}_sigma"] = joined.get(f"{est}_sigma_pred", np.nan)
        tables[short] = bias_table(frame, short)
    caption = (
        "Estimates against true mass (top) and their median bias (bottom, with 16-84%) beside "
        "the Eddington expectation of a calibrated estimator with the catalog's 1-sigma"
    )
    return caption, bias_plot(frame, tables)
