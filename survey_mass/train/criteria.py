"""Validation metrics and the X-ray paper's stopping criteria (Ntampaka et al. 2019, Sec. 3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FitMetrics:
    """Residuals delta = log M_pred - log M_true on a set of clusters [dex]."""

    n: int
    bias: float  # mean delta
    median: float
    scatter: float  # std of delta
    mae: float
    max_abs: float
    slope: float  # slope of a linear fit of M_true against M_pred

    def as_dict(self) -> dict:
        return asdict(self)


def fit_metrics(log_true: np.ndarray, log_pred: np.ndarray) -> FitMetrics:
    delta = np.asarray(log_pred, float) - np.asarray(log_true, float)
    slope = float(np.polyfit(log_pred, log_true, 1)[0]) if np.ptp(log_pred) > 0 else 0.0
    return FitMetrics(
        n=int(delta.size),
        bias=float(delta.mean()),
        median=float(np.median(delta)),
        scatter=float(delta.std()),
        mae=float(np.abs(delta).mean()),
        max_abs=float(np.abs(delta).max()),
        slope=slope,
    )


@dataclass(frozen=True)
class StoppingCriteria:
    """Stop when the validation fold has max|delta| < 0.3, |median delta| < 0.02, slope > 0.9."""

    max_abs: float = 0.3
    abs_median: float = 0.02
    min_slope: float = 0.9

    def met(self, m: FitMetrics) -> bool:
        return (
            m.max_abs < self.max_abs
            and abs(m.median) < self.abs_median
            and m.slope > self.min_slope
        )
