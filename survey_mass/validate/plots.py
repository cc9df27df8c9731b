"""Report figures (matplotlib, Agg: no display needed), each returned as PNG bytes.

Every helper takes plain arrays, so the report, notebooks and the interpretation code (saliency
maps computed elsewhere) draw the same figures.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from survey_mass.validate.metrics import BinRow, GaussianFit  # noqa: E402

DPI = 100


def to_png(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed (no pyplot state leaks between reports)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def pred_vs_ref(
    log_ref,
    log_pred,
    *,
    sigma_pred=None,
    xlabel="reference log10 M500 [Msun]",
    ylabel="predicted log10 M500 [Msun]",
    title="",
) -> bytes:
    """Predicted against reference mass with the 1:1 line."""
    log_ref = np.asarray(log_ref, float)
    log_pred = np.asarray(log_pred, float)
    fig, ax = plt.subplots(figsize=(5, 5))
    if sigma_pred is not None and np.isfinite(sigma_pred).any():
        ax.errorbar(log_ref, log_pred, yerr=sigma_pred, fmt="none", ecolor="0.75", lw=0.6, zorder=1)
    ax.scatter(log_ref, log_pred, s=8, alpha=0.7, zorder=2)
    finite = np.concatenate([log_ref[np.isfinite(log_ref)], log_pred[np.isfinite(log_pred)]])
    lo, hi = (finite.min() - 0.1, finite.max() + 0.1) if finite.size else (13.5, 15.5)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=xlabel, ylabel=ylabel, title=title)
    ax.set_aspect("equal")
    ax.legend(loc="upper left")
    return to_png(fig)


def residual_histogram(
    delta, fit: GaussianFit, *, title="", xlabel="log10 M_pred - log10 M_ref [dex]"
) -> bytes:
    """The residual PDF with its Gaussian fit."""
    delta = np.asarray(delta, float)
    delta = delta[np.isfinite(delta)]
    fig, ax = plt.subplots(figsize=(6, 4))
    if delta.size:
        bins = int(np.clip(np.sqrt(delta.size), 10, 60))
        ax.hist(delta, bins=bins, density=True, alpha=0.6, label=f"N = {delta.size}")
        if np.isfinite(fit.sigma) and fit.sigma > 0:
            x = np.linspace(delta.min(), delta.max(), 300)
            pdf = np.exp(-0.5 * ((x - fit.mu) / fit.sigma) ** 2) / (fit.sigma * np.sqrt(2 * np.pi))
            ax.plot(x, pdf, "k-", label=f"Gaussian: mu = {fit.mu:+.3f}, sigma = {fit.sigma:.3f}")
    ax.axvline(0.0, color="0.5", lw=0.8)
    ax.set(xlabel=xlabel, ylabel="probability density", title=title)
    ax.legend(loc="upper right", fontsize="small")
    return to_png(fig)


def bin_bars(rows: Sequence[BinRow], *, title="", ylabel="(M_pred - M_ref) / M_pred") -> bytes:
    """Mean +- std of the fractional difference per redshift bin (and all, high mass)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(rows))
    means = [r.mean for r in rows]
    stds = [r.std if np.isfinite(r.std) else 0.0 for r in rows]
    ax.bar(x, np.nan_to_num(means), yerr=stds, capsize=4, alpha=0.7)
    ax.axhline(0.0, color="k", lw=0.8)
    labels = [r.label.replace(" < z <= ", "-").replace("log M > ", "logM>") for r in rows]
    ax.set_xticks(
        x, [f"{label}\n(N={r.n})" for label, r in zip(labels, rows, strict=True)], fontsize="small"
    )
    ax.set(ylabel=ylabel, title=title)
    return to_png(fig)


def radial_profile(
    edges_r500, profiles: Mapping[str, np.ndarray], *, title="", ylabel="dN / N"
) -> bytes:
    """Radial profiles (e.g. dN/N of an interpretation map) against r / R500."""
    edges = np.asarray(edges_r500, float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, profile in profiles.items():
        ax.plot(centres, profile, marker="o", ms=3, label=label)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set(xlabel="r / R500", ylabel=ylabel, title=title)
    if profiles:
        ax.legend(fontsize="small")
    return to_png(fig)


def image_panels(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    cmaps: Sequence[str] | None = None,
    centred: Sequence[bool] | None = None,
) -> bytes:
    """Images side by side (e.g. a cutout and its saliency map), each with its colour bar.

    ``centred`` images get a colour scale symmetric about zero (signed maps such as gradients).
    """
    if len(images) != len(titles):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    cmaps = list(cmaps) if cmaps is not None else ["viridis"] * len(images)
    centred = list(centred) if centred is not None else [False] * len(images)
    fig, axes = plt.subplots(1, len(images), figsize=(3.6 * len(images), 3.4), squeeze=False)
    for ax, image, title, cmap, symmetric in zip(
        axes[0], images, titles, cmaps, centred, strict=True
    ):
        image = np.asarray(image, float)
        if image.ndim == 3:  # bands last: show their sum
            image = image.sum(axis=-1)
        limit = (float(np.nanmax(np.abs(image))) or 1.0) if symmetric else None
        vmin = -limit if limit is not None else None
        shown = ax.imshow(image, origin="lower", cmap=cmap, vmin=vmin, vmax=limit)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title, fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    return to_png(fig)


def residuals_vs_z(z, residuals: Mapping[str, np.ndarray], *, title="") -> bytes:
    """log M_pred - log M_ref against redshift, one colour per estimate."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, delta in residuals.items():
        ok = np.isfinite(delta) & np.isfinite(z)
        ax.scatter(np.asarray(z)[ok], np.asarray(delta)[ok], s=8, alpha=0.6, label=label)
    ax.axhline(0.0, color="k", lw=1)
    ax.set(xlabel="z", ylabel="log10 M_pred - log10 M_ref [dex]", title=title)
    ax.legend(loc="best", fontsize=8)
    return to_png(fig)


def coverage_bars(coverage: Mapping[str, Mapping[str, float]], *, title="") -> bytes:
    """The 68% and 95% coverage of each estimate's intervals against the nominal levels."""
    names = list(coverage)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 4))
    for offset, level in ((-0.2, "68"), (0.2, "95")):
        values = [100 * coverage[n].get(level, np.nan) for n in names]
        ax.bar(x + offset, values, width=0.4, label=f"{level}% interval")
        ax.axhline(float(level), color="k", lw=0.8, ls="--")
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set(ylabel="fraction of references inside [%]", ylim=(0, 100), title=title)
    ax.legend(loc="lower right", fontsize=8)
    return to_png(fig)


def sky_map(ra, dec, values, *, matched=None, title="", label="log10 M500 [Msun]") -> bytes:
    """Positions coloured by mass; matched ones ringed."""
    fig, ax = plt.subplots(figsize=(5, 5))
    points = ax.scatter(ra, dec, c=values, s=12, cmap="viridis")
    if matched is not None:
        ax.scatter(
            np.asarray(ra)[matched],
            np.asarray(dec)[matched],
            s=40,
            facecolors="none",
            edgecolors="r",
            lw=0.6,
            label="matched",
        )
        ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(points, ax=ax, label=label)
    ax.set(xlabel="RA [deg]", ylabel="Dec [deg]", title=title)
    ax.invert_xaxis()  # east to the left, as on the sky
    return to_png(fig)
