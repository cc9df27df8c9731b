"""Benchmark of the mock survey (``--smoke``: seconds): cutouts per second per instrument, and a 10,000-cluster footprint
streamed to Parquet in bounded memory.

    python benchmarks/bench_mock_survey.py [--n 100] [--clusters 10000] [--physics v1|v2]

1. Renders the same ``--n`` clusters with each instrument and prints cutouts/s and the ratio to the
   X-ray renderer measured in the same process (the reference, since the CNNs train on it).
2. Paints one low-z optical field (the worst case: ~10^4 field objects) with the vectorised
   painter and with a naive one-stamp-per-galaxy loop, and prints the speed-up.
3. Writes the truth table and the three mock catalogs of a cone holding ``--clusters`` clusters with
   ``survey-mass simulate``'s streaming writer (no cutouts) and prints the wall time and the peak
   resident memory, before and after, next to the size of the tables written.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from survey_mass.mock import RENDERERS, optical
from survey_mass.mock.survey import simulate
from survey_mass.mock.universe import (
    UNIVERSE_ORDER,
    UniverseSpec,
    clusters_in,
    clusters_per_deg2,
)
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import ConeFootprint


def _sample(n: int, physics: str) -> pd.DataFrame:
    spec = UniverseSpec(seed=1, density_scale=20, physics=physics)
    footprint = ConeFootprint(ra=10.0, dec=-5.0, radius_deg=1.5)
    frames = [
        clusters_in(spec, footprint, UNIVERSE_ORDER, p)
        for p in footprint_pixels(footprint, UNIVERSE_ORDER)
    ]
    return pd.concat(frames, ignore_index=True).head(n)


def bench_renderers(n: int, physics: str = "v1") -> None:
    sample = _sample(n, physics)
    states = [s for _, s in sample.iterrows()]
    rates = {}
    for instrument, render in RENDERERS.items():
        render(states[0], 1)  # warm caches (profile tables, K-corrections)
        start = time.perf_counter()
        for state in states:
            render(state, 1)
        rates[instrument] = len(states) / (time.perf_counter() - start)
    print(
        f"cutouts per second over {len(states)} clusters (0.03 < z < 1, physics {physics}), "
        "one process:"
    )
    bench_renderers.rates = rates
    for instrument, rate in rates.items():
        print(
            f"  {instrument:8s} {rate:8.1f} /s  {1e3 / rate:6.1f} ms each  "
            f"x{rate / rates['xray']:.2f} vs xray"
        )


def _naive_paint(npix, col, row, sigma_pix, fluxes):
    """Reference: one pixel-integrated Gaussian stamp per galaxy, added in a Python loop."""
    from scipy.special import erf

    image = np.zeros((fluxes.shape[1], npix, npix))
    for c, r, s, f in zip(col, row, sigma_pix, fluxes, strict=True):
        half = int(np.clip(np.ceil(3.5 * s), 1, 30))
        ic, ir = int(np.floor(c + 0.5)), int(np.floor(r + 0.5))
        idx = np.arange(-half, half + 1)
        wx = 0.5 * (
            erf((ic + idx + 0.5 - c) / (np.sqrt(2) * s))
            - erf((ic + idx - 0.5 - c) / (np.sqrt(2) * s))
        )
        wy = 0.5 * (
            erf((ir + idx + 0.5 - r) / (np.sqrt(2) * s))
            - erf((ir + idx - 0.5 - r) / (np.sqrt(2) * s))
        )
        for j, y in enumerate(ir + idx):
            for i, x in enumerate(ic + idx):
                if 0 <= x < npix and 0 <= y < npix:
                    image[:, y, x] += wy[j] * wx[i] * f
    return image


def bench_painter() -> None:
    rng = np.random.default_rng(0)
    n = 10_000  # a z = 0.03 cutout spans 1.9 deg^2 of field galaxies and stars
    col, row = rng.uniform(0, 128, n), rng.uniform(0, 128, n)
    sigma = rng.uniform(0.05, 1.5, n)
    fluxes = rng.exponential(5.0, (n, 5))
    start = time.perf_counter()
    fast = optical.paint(128, col, row, sigma, fluxes)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    slow = _naive_paint(128, col, row, sigma, fluxes)
    t_slow = time.perf_counter() - start
    assert np.allclose(fast, slow)
    bench_painter.same = True
    print(
        f"optical painter, {n} objects: vectorised {t_fast * 1e3:.1f} ms, naive loop "
        f"{t_slow * 1e3:.0f} ms: x{t_slow / t_fast:.0f}"
    )


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def bench_streaming(n_clusters: int) -> None:
    spec = UniverseSpec(seed=2024)
    area = n_clusters / clusters_per_deg2(spec)
    radius = float(np.degrees(np.arccos(1 - area / (2 * np.pi * (180 / np.pi) ** 2))))
    footprint = ConeFootprint(ra=180.0, dec=30.0, radius_deg=radius)
    rss_before = _max_rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        summary = simulate(
            spec, footprint, Path(folder), instruments=(), n_cutouts=0, progress=False
        )
        elapsed = time.perf_counter() - start
        written = sum(f.stat().st_size for f in Path(folder).glob("*.parquet")) / 2**20
    rows = summary["rows"]
    bench_streaming.rows = rows
    print(
        f"streamed footprint r = {radius:.1f} deg ({footprint.area_deg2():.0f} deg^2): "
        f"{rows['truth']} clusters, {rows['redmapper']} redMaPPer, {rows['weak_lensing']} WL, "
        f"{rows['psz2']} PSZ2 rows in {elapsed:.1f} s ({rows['truth'] / elapsed:.0f} clusters/s); "
        f"{written:.1f} MiB of Parquet; peak RSS {rss_before:.0f} -> {_max_rss_mb():.0f} MiB"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="clusters rendered per instrument")
    parser.add_argument(
        "--clusters", type=int, default=10_000, help="clusters in the streamed footprint"
    )
    parser.add_argument("--physics", choices=("v1", "v2"), default="v1", help="mock physics")
    parser.add_argument("--smoke", action="store_true", help="a few clusters, seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.clusters = 2, 200
    bench_renderers(args.n, args.physics)
    bench_painter()
    bench_streaming(args.clusters)
    measured = {  # what ran: every renderer, the painter check, the streamed writer
        "rendered_instruments": sorted(bench_renderers.rates),
        "painter_matches_naive": bench_painter.same,
        "streamed_truth_rows": int(bench_streaming.rows["truth"]),
    }
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
