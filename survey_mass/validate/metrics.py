"""Validation numbers for predicted against reference masses, as the three papers report them.

- delta = log10 M_pred - log10 M_ref [dex]: bias (mean, median), scatter as the sigma of a
  Gaussian fitted to its histogram (the X-ray paper) and as its std, mean absolute error (the
  optical paper's MAE).
- (M_pred - M_ref) / M_pred: mean +- std per redshift bin of ``constants.Z_BINS`` (lo < z <= hi),
  over all, and for log10 M_ref > 14.7 (the SZ paper's table).
- coverage: the fraction of |delta| inside the quoted 68% / 95% intervals, with the predicted and
  (when given) reference sigmas added in quadrature; the 95% interval is the catalog's own
  (``logm500_p97_5``, calibrated for heavy tails) where it has one, else 1.96 sigma.
- radial dN/N: the X-ray paper's interpretation profile, per annulus in units of R500.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

from survey_mass.constants import GAUSS_95, Z_BINS

HIGH_MASS_LOG = 14.7
#: |delta| / sigma limits of the central 68.27% and 95% Gaussian intervals.
COVERAGE_LEVELS = {"68": 1.0, "95": GAUSS_95}
#: Fewer points than this: the Gaussian sigma is the sample std (a fit would be noise).
MIN_POINTS_FOR_FIT = 20


@dataclass(frozen=True)
class GaussianFit:
    mu: float
    sigma: float
    method: str  # "histogram fit" or "moments"


@dataclass(frozen=True)
class BinRow:
    label: str
    n: int
    mean: float
    std: float


@dataclass(frozen=True)
class Summary:
    n: int
    bias_dex: float
    median_dex: float
    std_dex: float
    gauss_mu_dex: float
    gauss_sigma_dex: float
    gauss_method: str
    mae_dex: float
    fractional_by_bin: list[BinRow]
    coverage: dict[str, float] | None
    n_coverage: int

    def to_dict(self) -> dict:
        return asdict(self)


def _gaussian(x, amplitude, mu, sigma):
    return amplitude * np.exp(-0.5 * ((x - mu) / sigma) ** 2)


def gaussian_fit(delta: np.ndarray) -> GaussianFit:
    """Fit a Gaussian to the histogram of ``delta`` (robust to outlier tails, unlike the std)."""
    delta = np.asarray(delta, dtype=float)
    delta = delta[np.isfinite(delta)]
    if delta.size == 0:
        return GaussianFit(float("nan"), float("nan"), "none")
    if delta.size < MIN_POINTS_FOR_FIT:
        return GaussianFit(
            float(delta.mean()), float(delta.std(ddof=1)) if delta.size > 1 else 0.0, "moments"
        )
    median = float(np.median(delta))
    spread = float(stats.median_abs_deviation(delta, scale="normal")) or float(delta.std()) or 1e-3
    lo, hi = median - 5 * spread, median + 5 * spread
    n_bins = int(np.clip(np.sqrt(delta.size), 10, 80))
    counts, edges = np.histogram(delta, bins=n_bins, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    try:
        (_, mu, sigma), _ = optimize.curve_fit(
            _gaussian, centres, counts, p0=(counts.max(), median, spread), maxfev=5000
        )
    except RuntimeError:  # no convergence
        mu, sigma = np.nan, np.nan
    if not (lo < mu < hi and 0 < abs(sigma) < hi - lo):  # diverged: fall back to the moments
        return GaussianFit(float(delta.mean()), float(delta.std(ddof=1)), "moments")
    return GaussianFit(float(mu), float(abs(sigma)), "histogram fit")


def fractional_difference(log_pred, log_ref) -> np.ndarray:
    """(M_pred - M_ref) / M_pred from log10 masses."""
    return 1.0 - 10.0 ** (np.asarray(log_ref, float) - np.asarray(log_pred, float))


def fractional_table(log_pred, log_ref, z) -> list[BinRow]:
    """Mean +- std of (M_pred - M_ref)/M_pred per z bin, over all, and for log M_ref > 14.7."""
    frac = fractional_difference(log_pred, log_ref)
    z = np.asarray(z, float)
    log_ref = np.asarray(log_ref, float)
    selections = [(f"{lo:g} < z <= {hi:g}", (z > lo) & (z <= hi)) for lo, hi in Z_BINS]
    selections += [
        ("all", np.ones(frac.size, bool)),
        (f"log M > {HIGH_MASS_LOG}", log_ref > HIGH_MASS_LOG),
    ]
    rows = []
    for label, chosen in selections:
        values = frac[chosen & np.isfinite(frac)]
        rows.append(
            BinRow(
                label,
                int(values.size),
                float(values.mean()) if values.size else float("nan"),
                float(values.std(ddof=1)) if values.size > 1 else float("nan"),
            )
        )
    return rows


def coverage(
    log_pred, log_ref, sigma_pred, sigma_ref=None, half95_pred=None
) -> tuple[dict[str, float] | None, int]:
    """Fractions of |delta| within the 68% and 95% intervals, and how many rows had a sigma.

    ``half95_pred``: the prediction's own 95% half-width, used instead of 1.96 ``sigma_pred``.
    """
    delta = np.asarray(log_pred, float) - np.asarray(log_ref, float)
    ref = 0.0 if sigma_ref is None else np.nan_to_num(np.asarray(sigma_ref, float))
    sigma = np.sqrt(np.asarray(sigma_pred, float) ** 2 + ref**2)
    k95 = COVERAGE_LEVELS["95"]
    own95 = k95 * np.asarray(sigma_pred, float) if half95_pred is None else half95_pred
    half95 = np.sqrt(np.asarray(own95, float) ** 2 + (k95 * ref) ** 2)
    ok = np.isfinite(delta) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(half95)
    if not ok.any():
        return None, 0
    inside = {
        "68": np.abs(delta[ok]) <= sigma[ok],
        "95": np.abs(delta[ok]) <= half95[ok],
    }
    return {level: float(np.mean(v)) for level, v in inside.items()}, int(ok.sum())


def summarize(log_pred, log_ref, z, sigma_pred=None, sigma_ref=None, half95_pred=None) -> Summary:
    """Every number of the report for one (prediction, reference) pair of mass columns."""
    log_pred = np.asarray(log_pred, float)
    log_ref = np.asarray(log_ref, float)
    z = np.asarray(z, float)
    ok = np.isfinite(log_pred) & np.isfinite(log_ref)
    delta = log_pred[ok] - log_ref[ok]
    fit = gaussian_fit(delta)
    cov, n_cov = (None, 0)
    if sigma_pred is not None:
        ref_sigma = None if sigma_ref is None else np.asarray(sigma_ref, float)[ok]
        own95 = None if half95_pred is None else np.asarray(half95_pred, float)[ok]
        cov, n_cov = coverage(
            log_pred[ok], log_ref[ok], np.asarray(sigma_pred, float)[ok], ref_sigma, own95
        )
    nan = float("nan")
    return Summary(
        n=int(delta.size),
        bias_dex=float(delta.mean()) if delta.size else nan,
        median_dex=float(np.median(delta)) if delta.size else nan,
        std_dex=float(delta.std(ddof=1)) if delta.size > 1 else nan,
        gauss_mu_dex=fit.mu,
        gauss_sigma_dex=fit.sigma,
        gauss_method=fit.method,
        mae_dex=float(np.mean(np.abs(delta))) if delta.size else nan,
        fractional_by_bin=fractional_table(log_pred[ok], log_ref[ok], z[ok]),
        coverage=cov,
        n_coverage=n_cov,
    )


def radial_dn_over_n(
    image: np.ndarray, change: np.ndarray, r500_pix: float, edges_r500=None, centre=None
) -> tuple[np.ndarray, np.ndarray]:
    """dN/N per annulus: the summed ``change`` over the summed ``image`` in each radial bin.

    As in the X-ray paper's interpretation, ``change`` is what the method does to the image (a
    DeepDream step, or input gradient x step); radii are in units of R500 from ``centre``
    (default: the image centre). Returns (bin edges [R500], dN/N; NaN where the annulus is empty).
    """
    image = np.asarray(image, float)
    change = np.asarray(change, float)
    if image.shape != change.shape or image.ndim != 2:
        raise ValueError(
            f"image and change must be 2D arrays of one shape; got {image.shape}, {change.shape}"
        )
    if not r500_pix > 0:
        raise ValueError(f"r500_pix must be > 0 pixels; got {r500_pix}")
    edges = np.linspace(0.0, 1.5, 16) if edges_r500 is None else np.asarray(edges_r500, float)
    cy, cx = ((image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2) if centre is None else centre
    yy, xx = np.indices(image.shape)
    radius = np.hypot(yy - cy, xx - cx) / r500_pix
    which = np.digitize(radius, edges) - 1
    inside = (which >= 0) & (which < edges.size - 1)
    n = np.bincount(which[inside], weights=image[inside], minlength=edges.size - 1)
    dn = np.bincount(which[inside], weights=change[inside], minlength=edges.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(n != 0, dn / n, np.nan)
    return edges, profile
