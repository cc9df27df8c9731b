"""Batch preparation shared by every instrument: validate, resample, scale, to NHWC float32.

A bad cutout never spoils its batch: it leaves with a reason (for the quarantine table) and the
others go on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from survey_mass.preprocess.resample import (
    MIN_COVERAGE,
    PARSED_WCS,
    GridSpec,
    ResampleError,
    celestial_wcs,
    grid_coordinates,
    on_model_grid,
    resample_batch,
)
from survey_mass.sources.base import Cutout, CutoutFailure


@dataclass
class Prepared:
    """Model-ready inputs for the cutouts that passed, and failures for those that did not."""

    inputs: object  # (N, H, W, C) float32 on xp
    cutouts: list[Cutout]
    failures: list[CutoutFailure] = field(default_factory=list)


def _image_cube(cutout: Cutout, required_keys: Sequence[str]) -> np.ndarray:
    """The cutout's pixels as (C, h, w) float64, or a ResampleError naming the problem."""
    hdu = cutout.hdul[0]
    missing = [k for k in required_keys if k not in hdu.header]
    if missing:
        raise ResampleError("missing_header", f"FITS header lacks {', '.join(missing)}")
    if hdu.data is None:
        raise ResampleError("empty_cutout", "primary HDU has no data")
    data = np.asarray(hdu.data, dtype=np.float64)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or min(data.shape[1:]) < 2:
        raise ResampleError("bad_shape", f"image shape {hdu.data.shape} is not 2D or band-first 3D")
    if not np.isfinite(data).all():
        raise ResampleError("nonfinite_pixels", f"{int((~np.isfinite(data)).sum())} NaN/inf pixels")
    if not data.any():
        raise ResampleError("empty_cutout", "every pixel is zero")
    return data


def _grid_pixels(cutout: Cutout, shape: tuple, grid: GridSpec):
    """(input-pixel coordinates of the model grid, area ratio); (None, 1.0) for a cutout already
    on the model grid."""
    t = cutout.target
    in_wcs = cutout.meta.get(PARSED_WCS) or celestial_wcs(cutout.hdul[0].header)
    out_wcs = grid.wcs(t.ra, t.dec, t.z)
    if on_model_grid(in_wcs, shape, out_wcs, grid.npix):
        return None, 1.0
    return grid_coordinates(in_wcs, out_wcs, grid.npix)


def asinh_float32(values, xp):
    """asinh of a float64 batch, taken in float32, the model input's precision: within 2 ulp of
    the rounded float64 asinh and 16x faster. A value beyond float32's range (a header value gone
    wrong, such as a tiny EXPOSURE) becomes inf, and ``guard`` quarantines its row."""
    with np.errstate(over="ignore"):
        return xp.arcsinh(values.astype(xp.float32))


def prepare_batch(
    cutouts: Sequence[Cutout],
    grid: GridSpec,
    xp,
    *,
    conserve_flux: bool,
    required_keys: Sequence[str] = (),
    scale: Callable | None = None,
    channels: int | None = None,
) -> Prepared:
    """Resample every good cutout to ``grid`` and apply ``scale(batch, cutouts, xp)``."""
    failures: list[CutoutFailure] = []
    groups: dict[tuple, list] = defaultdict(list)
    for cutout in cutouts:
        try:
            cube = _image_cube(cutout, required_keys)
            if channels is not None and cube.shape[0] != channels:
                raise ResampleError("missing_band", f"{cube.shape[0]} bands, need {channels}")
            coords, area_ratio = _grid_pixels(cutout, cube.shape, grid)
        except ResampleError as err:
            failures.append(CutoutFailure(cutout.target, cutout.instrument, err.reason, str(err)))
            continue
        groups[(cube.shape, coords is None)].append((cutout, cube, coords, area_ratio))

    kept: list[Cutout] = []
    parts = []
    for members in groups.values():
        out = resample_batch(
            [m[1] for m in members],
            [m[2] for m in members],
            [m[3] for m in members],
            xp,
            conserve_flux,
        )
        coverage = np.asarray(xp.isfinite(out).mean(axis=(1, 2, 3)).tolist())
        for i, (cutout, *_rest) in enumerate(members):
            if coverage[i] < MIN_COVERAGE:
                failures.append(
                    CutoutFailure(
                        cutout.target,
                        cutout.instrument,
                        "partial_coverage",
                        f"cutout covers {coverage[i]:.0%} of the model grid",
                    )
                )
        good = [i for i in range(len(members)) if coverage[i] >= MIN_COVERAGE]
        if good:
            parts.append(xp.nan_to_num(out[xp.asarray(good)], nan=0.0))
            kept.extend(members[i][0] for i in good)
    if not kept:
        h = grid.npix
        return Prepared(xp.zeros((0, h, h, channels or 1), dtype=xp.float32), [], failures)
    batch = xp.concatenate(parts)
    if scale is not None:
        batch = scale(batch, kept, xp)
    inputs = xp.ascontiguousarray(xp.transpose(batch, (0, 2, 3, 1))).astype(xp.float32)
    return Prepared(inputs, kept, failures)
