"""CPU path against GPU path, in one run on the same mock X-ray cutouts: clusters/s of
preprocessing + 5-fold inference, and the largest mass difference between the two.

    python benchmarks/bench_gpu_path.py --clusters 1024 --batch-size 256
    python benchmarks/bench_gpu_path.py --smoke        # seconds

The GPU path is CuPy preprocessing with each batch resident on the device, handed to TensorFlow by
DLPack; TensorFlow memory growth is set first, as the worker plugin does. Without CuPy and a GPU
only the CPU side runs, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from bench_inference import mock_cutouts


def weigh(ensemble, cutouts, xp, batch_size: int) -> tuple[np.ndarray, float]:
    from survey_mass.infer.weigh import prepare

    start = time.perf_counter()
    out = []
    for i in range(0, len(cutouts), batch_size):
        prepared = prepare(ensemble, cutouts[i : i + batch_size], xp)
        z = np.array([c.target.z for c in prepared.cutouts])
        pred = ensemble.predict(prepared.inputs, z=z, xp=xp, batch_size=batch_size)
        out.append(pred.log10_m500)
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()
    return np.concatenate(out), time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--smoke", action="store_true", help="8 clusters, seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clusters, args.batch_size = 8, 4

    from survey_mass.infer.ensemble import load_ensemble
    from survey_mass.runner.worker_plugin import configure_tensorflow
    from survey_mass.xp import array_module
    from survey_mass.zoo.registry import SHIPPED_ZOO

    configure_tensorflow(len(os.sched_getaffinity(0)))
    ensemble = load_ensemble(SHIPPED_ZOO / "xray-v1")
    cutouts = mock_cutouts(args.clusters)
    result = {"clusters": len(cutouts), "batch_size": args.batch_size}
    weigh(ensemble, cutouts[: args.batch_size], np, args.batch_size)  # warm up
    cpu_masses, cpu_s = weigh(ensemble, cutouts, np, args.batch_size)
    result["cpu_clusters_per_s"] = round(len(cutouts) / cpu_s, 1)
    xp = array_module("auto")
    if xp is np:
        result["gpu"] = "no CuPy with a usable GPU here: GPU path not measured"
    else:
        result["gpu"] = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        weigh(ensemble, cutouts[: args.batch_size], xp, args.batch_size)  # warm up
        gpu_masses, gpu_s = weigh(ensemble, cutouts, xp, args.batch_size)
        result["gpu_clusters_per_s"] = round(len(cutouts) / gpu_s, 1)
        result["ratio_gpu_vs_cpu"] = round(cpu_s / gpu_s, 2)
        result["max_abs_mass_difference_dex"] = float(np.max(np.abs(gpu_masses - cpu_masses)))
    result["stacked_graphs_traced"] = len(ensemble._graphs)  # the stacked path really ran
    print(json.dumps(result))


if __name__ == "__main__":
    main()
