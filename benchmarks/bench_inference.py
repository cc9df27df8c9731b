"""Weighing throughput, measured in one run on the same mock X-ray cutouts:

1. the batched pipeline (WCS resampling of a whole batch in ``xp``, scaling on ``xp``, every
   fold member called once per batch; the mock cutouts are moved half a pixel off the model grid,
   as an archive's would be, so they are resampled) against a per-cluster loop, the usual way:
   ``Cutout2D`` of the aperture, ``scipy.ndimage.zoom`` to the model grid, the same physical
   scaling, and ``model.predict`` per fold member per cluster;
2. the 5-member fold ensemble against its bare first member, images/s on the same inputs.

    python benchmarks/bench_inference.py --clusters 256
    python benchmarks/bench_inference.py --smoke      # seconds: every path runs once

3. the stacked graph (all members in one ``tf.function`` on each shared batch) against the
   members called one by one, per batch size, with the largest mass difference of the two.

Rendering the mock cutouts is excluded from both sides (an archive would hand over FITS files).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import psutil


def cpu_model() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def mock_cutouts(n: int):
    import pandas as pd

    from survey_mass.mock.source import MockSource
    from survey_mass.mock.universe import base_pixel_clusters
    from survey_mass.sources.base import Target
    from survey_mass.spec.universe import UniverseSpec

    spec = UniverseSpec(seed=7, density_scale=10.0)
    frames, pixel = [], 60000
    while sum(map(len, frames)) < n:
        frames.append(base_pixel_clusters(spec, pixel))
        pixel += 1
    rows = pd.concat(frames).head(n)
    targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in rows.itertuples()]
    cutouts = list(MockSource(spec).cutouts(targets, "xray"))
    for c in cutouts:  # as an archive's cutout, whose pixels are not the model grid's: resampled
        c.hdul[0].header["CRPIX1"] += 0.5
        c.hdul[0].header["CRPIX2"] += 0.5
    return cutouts


def batched(ensemble, cutouts, batch_size: int) -> tuple[np.ndarray, float]:
    from survey_mass.infer.weigh import prepare

    start = time.perf_counter()
    out = []
    for i in range(0, len(cutouts), batch_size):
        prepared = prepare(ensemble, cutouts[i : i + batch_size], np)
        z = np.array([c.target.z for c in prepared.cutouts])
        out.append(ensemble.predict(prepared.inputs, z=z, batch_size=batch_size).log10_m500)
    return np.concatenate(out), time.perf_counter() - start


def per_cluster_loop(ensemble, cutouts) -> tuple[np.ndarray, float]:
    """Cutout2D + scipy zoom + model.predict per fold, one cluster at a time."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.nddata import Cutout2D
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales
    from scipy.ndimage import zoom

    from survey_mass.constants import COSMOLOGY, XRAY_APERTURE, XRAY_GRID
    from survey_mass.preprocess.xray import _scale

    start = time.perf_counter()
    masses = []
    for c in cutouts:
        hdu = c.hdul[0]
        wcs = WCS(hdu.header)
        t = c.target
        width = (XRAY_APERTURE / COSMOLOGY.angular_diameter_distance(t.z) * u.rad).to(u.deg)
        pixel = proj_plane_pixel_scales(wcs)[0] * u.deg
        size = int(round((width / pixel).decompose().value))
        cut = Cutout2D(hdu.data.astype(float), SkyCoord(t.ra * u.deg, t.dec * u.deg), size, wcs)
        image = zoom(cut.data, XRAY_GRID / np.array(cut.data.shape), order=1)
        image *= cut.data.sum() / max(image.sum(), 1e-30)  # keep the counts
        x = _scale(image[None, None], [c], np)  # the same physical scaling as the pipeline
        x = np.transpose(x, (0, 2, 3, 1)).astype(np.float32)
        folds = [m[0].predict(x, verbose=0)[0, 0] for m in ensemble.members]
        masses.append(np.mean(folds))
    return np.array(masses), time.perf_counter() - start


def images_per_s(fn, inputs, repeat: int = 3) -> float:
    fn(inputs[:64])  # warm up (graph tracing)
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn(inputs)
        best = min(best, time.perf_counter() - start)
    return len(inputs) / best


def stacked_vs_eager(ensemble, inputs, z, batch_sizes, repeat: int = 3) -> list[dict]:
    """The stacked graph against the members called one by one, interleaved run by run, per
    batch size; the masses of both (with and without TTA) compared."""
    rows = []
    for batch_size in batch_sizes:
        seconds = {True: np.inf, False: np.inf}
        for stacked in (True, False):  # warm up (tracing) both
            ensemble.predict(
                inputs[:batch_size], z=z[:batch_size], batch_size=batch_size, stacked=stacked
            )
        for _ in range(repeat):
            for stacked in (False, True):
                start = time.perf_counter()
                ensemble.predict(inputs, z=z, batch_size=batch_size, stacked=stacked)
                seconds[stacked] = min(seconds[stacked], time.perf_counter() - start)
        rows.append(
            {
                "batch_size": batch_size,
                "member_by_member_images_per_s": round(len(inputs) / seconds[False], 1),
                "stacked_images_per_s": round(len(inputs) / seconds[True], 1),
                "ratio_stacked_time": round(seconds[True] / seconds[False], 3),
            }
        )
    n = min(len(inputs), 32)
    diff = 0.0
    for tta in (False, True):
        a = ensemble.predict(inputs[:n], z=z[:n], tta=tta, stacked=False)
        b = ensemble.predict(inputs[:n], z=z[:n], tta=tta)
        diff = max(diff, float(np.max(np.abs(a.log10_m500 - b.log10_m500))))
    rows.append({"max_mass_difference_dex": diff, "graphs_traced": len(ensemble._graphs)})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=256)
    parser.add_argument("--loop-clusters", type=int, default=64, help="the loop is slow")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--threads", type=int, default=0, help="TF threads (0: usable cores)")
    parser.add_argument("--smoke", action="store_true", help="a few clusters, seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clusters, args.loop_clusters, args.batch_sizes = 16, 2, [8]

    from survey_mass.infer.ensemble import load_ensemble
    from survey_mass.infer.weigh import prepare
    from survey_mass.runner.worker_plugin import configure_tensorflow
    from survey_mass.zoo.registry import SHIPPED_ZOO

    threads = args.threads or len(os.sched_getaffinity(0))
    configure_tensorflow(threads)
    print(
        json.dumps(
            {
                "cpu": cpu_model(),
                "cores_usable": threads,
                "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )
    ensemble = load_ensemble(SHIPPED_ZOO / "xray-v1")
    cutouts = mock_cutouts(args.clusters)

    batched(ensemble, cutouts[: args.batch_size], args.batch_size)  # warm up
    masses, seconds = batched(ensemble, cutouts, args.batch_size)
    loop_cutouts = cutouts[: args.loop_clusters]
    per_cluster_loop(ensemble, loop_cutouts[:2])  # warm up
    loop_masses, loop_seconds = per_cluster_loop(ensemble, loop_cutouts)
    n_loop = len(loop_cutouts)
    diff = loop_masses - masses[:n_loop]
    print(
        json.dumps(
            {
                "benchmark": "batched pipeline vs per-cluster loop (preprocess + 5-fold inference)",
                "batched_clusters_per_s": round(len(cutouts) / seconds, 1),
                "loop_clusters_per_s": round(n_loop / loop_seconds, 2),
                "ratio": round((len(cutouts) / seconds) / (n_loop / loop_seconds), 1),
                "mass_difference_dex_mean_abs": round(float(np.mean(np.abs(diff))), 4),
                "clusters": len(cutouts),
                "loop_clusters": n_loop,
            }
        )
    )

    inputs = prepare(ensemble, cutouts, np).inputs
    model = ensemble.members[0][0]
    z = np.array([c.target.z for c in cutouts])[: len(inputs)]
    bare = images_per_s(lambda x: ensemble._member_predict(model, x, args.batch_size), inputs)
    full = images_per_s(
        lambda x: ensemble.predict(x, z=z[: len(x)], batch_size=args.batch_size), inputs
    )
    k = len(ensemble.members)
    print(
        json.dumps(
            {
                "benchmark": f"ensemble ({k} members) vs bare model, images/s",
                "bare_model_images_per_s": round(bare, 1),
                "ensemble_images_per_s": round(full, 1),
                "ratio": round(full / bare, 3),
                "ideal_ratio": round(1 / k, 3),
                "ensemble_overhead_vs_ideal": round((bare / k) / full, 3),
            }
        )
    )
    rows = stacked_vs_eager(ensemble, inputs, z, args.batch_sizes)
    summary = {"benchmark": f"stacked graph vs member by member ({k} members)", "threads": threads}
    print(json.dumps(summary | {"rows": rows}))
    return summary | {"rows": rows}


if __name__ == "__main__":
    main()
