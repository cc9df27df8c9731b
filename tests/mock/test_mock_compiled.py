"""The renderers' compiled loops give what the NumPy expressions of the same models give."""

import numba.core.caching
import numpy as np
import pytest

from survey_mass.mock import compiled, xray_v2
from survey_mass.mock.sz import _profile_table, gnfw_projected

GRID = (np.arange(40) - 19.5) * 0.05
OFFSETS = (np.arange(3) - 1.0) / 3 * 0.05


def _samples():
    """Sub-sample coordinates (40, 40, 3, 3): x along columns, y along rows."""
    x = GRID[None, :, None, None] + OFFSETS[None, None, None, :]
    y = GRID[:, None, None, None] + OFFSETS[None, None, :, None]
    return x, y


def _rotated(x, y, x0, y0, angle):
    c, s = np.cos(angle), np.sin(angle)
    return c * (x - x0) + s * (y - y0), -s * (x - x0) + c * (y - y0)


def test_beta_models_sum_and_average_over_sub_pixels_as_numpy_does():
    rows = [  # an elliptical, rotated, off-centre model and a compact round one beside it
        (0.13, -0.21, 0.3, 1.51, 0.7, 0.6, 5.0),
        (-0.4, 0.25, 0.05, 1.6, 1.0, 0.0, 0.8),
    ]
    x, y = _samples()
    expected = 0.0
    for x0, y0, rc, p, q, angle, amplitude in rows:
        xr, yr = _rotated(x, y, x0, y0, angle)
        expected = expected + amplitude * (1 + (xr**2 * q + yr**2 / q) / rc**2) ** (-p)
    expected = expected.mean(axis=(2, 3))
    components = np.array(
        [(x0, y0, rc, p, q, np.cos(a), np.sin(a), amp) for x0, y0, rc, p, q, a, amp in rows]
    )
    got = compiled.beta_pixel_mean(GRID, OFFSETS, components)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("theta500", [0.02, 0.2, 3.0])  # cusp under a sub-pixel, resolved, huge
def test_gnfw_sums_interpolate_the_profile_table_as_numpy_interp(theta500):
    big_x, y_prof, _ = gnfw_projected("cool_core")
    x0, y0, q, angle, x_in = 0.1, -0.05, 0.8, 1.1, 2.5
    x, y = _samples()
    xr, yr = _rotated(x, y, x0, y0, angle)
    radius = np.sqrt(xr**2 * q + yr**2 / q) / theta500
    values = np.interp(np.log(np.maximum(radius, big_x[0])), np.log(big_x), y_prof, right=0.0)
    halo = (x0, y0, q, np.cos(angle), np.sin(angle), theta500)
    sums, inside = compiled.gnfw_pixel_sums(GRID, OFFSETS, halo, *_profile_table("cool_core"), x_in)
    np.testing.assert_allclose(sums, values.sum(axis=(2, 3)), rtol=1e-12, atol=0)
    assert inside == pytest.approx(values[radius < x_in].sum(), rel=1e-12)
    assert (radius > big_x[-1]).any() == (theta500 < 1)  # the table's end (right = 0) is crossed


def test_loops_compile_where_no_cache_directory_is_writable(monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_LOCATOR_CLASSES", raising=False)
    monkeypatch.setattr(numba.core.config, "CACHE_LOCATOR_CLASSES", "")
    monkeypatch.setattr(numba.core.caching.CacheImpl, "_locator_classes", [])  # nowhere to cache
    with pytest.raises(RuntimeError, match="no locator available"):
        numba.njit(cache=True)(xray_v2._chip_fraction.py_func)
    uncached = compiled.compiled(xray_v2._chip_fraction.py_func)
    assert isinstance(uncached._cache, numba.core.caching.NullCache)
    out = np.empty((64, 64))
    grid, offsets = np.arange(64) - 31.5, (np.arange(4) - 1.5) / 4
    args = (grid, offsets, (0.4, -0.3), (0.8, 0.6), (8.5, 0.07, 0.15))
    uncached(*args, out)
    expected = np.empty((64, 64))
    xray_v2._chip_fraction(*args, expected)
    np.testing.assert_array_equal(out, expected)
    assert out.any()
