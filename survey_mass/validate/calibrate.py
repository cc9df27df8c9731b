"""``survey-mass calibrate``: fit each zoo entry's calibration map on fresh mock clusters.

The clusters are a cone of a universe seed no entry was trained on, drawn from the universe's
mass function (the prior the maps state), weighed by the production path with the raw ensemble
outputs (``models.calibrated = false``). Each instrument's map is fitted on its own outputs;
the joint entry's map on the joint mass recomputed from them as production combines them (an
uninformative instrument masked). Each map is written into its entry with its sha256 in the
manifest, so it is verified like a member and changes the job hash of every job using it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from survey_mass.errors import UserError
from survey_mass.infer.calibration_map import MAP_NAME, CalibrationMap, fit_map
from survey_mass.validate.detections import PSZ2_SNR_MIN
from survey_mass.validate.evaluate import (
    LOW_Z_MAX,
    evaluation_spec,
    in_calibration_stratum,
    refuse_training_seed,
    run_massive,
)
from survey_mass.zoo.manifest import read_manifest, rewrite_manifest, sha256_file


def write_map(entry_path: str | Path, data: dict) -> None:
    """The map into the entry folder, then the manifest naming it (written last)."""
    entry_path = Path(entry_path)
    path = entry_path / MAP_NAME
    path.write_text(json.dumps(data, indent=1))
    listing = {"file": MAP_NAME, "sha256": sha256_file(path), **data["fitted_on"]}
    rewrite_manifest(entry_path, read_manifest(entry_path), calibration_map=listing)


def _raw_results(joined: pd.DataFrame, instruments) -> dict[str, dict]:
    """Per instrument: target_id -> (log M, spread, sigma, S/N) as the workers gave them."""
    results = {}
    for inst in instruments:
        col = f"logm500_{inst}"
        values = joined[[col, f"{col}_spread", f"{col}_sigma"]].to_numpy(float)
        values = np.column_stack([values, _snr(joined, inst)])
        ok = np.isfinite(values[:, 0])
        results[inst] = dict(zip(joined["target_id"][ok], map(tuple, values[ok]), strict=True))
    return results


def _snr(joined: pd.DataFrame, inst: str) -> np.ndarray:
    """The S/N the instrument's map is cut by (SZ's ``sz_snr``), else NaN."""
    column = f"{inst}_snr"
    return joined[column].to_numpy(float) if column in joined else np.full(len(joined), np.nan)


def _summary(data: dict) -> list[dict]:
    return [
        {
            "z_bin": b["z_bin"],
            "n": b["n"],
            "slope_b": b.get("b"),
            "informative_quartiles": [c["informative"] for c in b.get("cells", [])],
            "k68": [round(c["k68"], 3) for c in b.get("cells", [])],
            "snr_classes": [
                {
                    "snr": c["snr"],
                    "n": c["n"],
                    "informative_cells": [cell["informative"] for cell in c["cells"]],
                }
                for c in b.get("snr_classes", [])
            ],
        }
        for b in data["z_bins"]
    ]


def cone_area(radius_deg: float) -> float:
    """Solid angle of a cone [deg^2]."""
    return 2 * math.pi * math.degrees(1.0) ** 2 * (1 - math.cos(math.radians(radius_deg)))


def stratified(
    joined: pd.DataFrame,
    wide: pd.DataFrame,
    radius: float,
    wide_radius: float,
    detected: frozenset = frozenset(),
):
    """The cone's clusters (weight 1) and, in their place above 10^14.5 at z < 0.4, below z 0.1
    and among the mock PSZ2 ``detected`` ids, those of the concentric wide cone at weight area /
    wide area: one sample of the mass function, whose massive end, nearby clusters and Planck
    detections (the clusters SZ can weigh, rare above z 0.4) are measured on all the wide
    cone's."""
    if wide_radius < radius:
        raise UserError(
            f"the massive sample's cone ({wide_radius:.1f} deg) is narrower than the "
            f"calibration cone ({radius:.1f} deg): ask --massive for more clusters"
        )

    def in_stratum(frame: pd.DataFrame) -> np.ndarray:
        return in_calibration_stratum(frame) | frame["target_id"].isin(detected).to_numpy()

    bulk, rare = joined[~in_stratum(joined)], wide[in_stratum(wide)]
    weight = np.concatenate(
        [np.ones(len(bulk)), np.full(len(rare), cone_area(radius) / cone_area(wide_radius))]
    )
    return pd.concat([bulk, rare], ignore_index=True), weight


def fit_maps(joined: pd.DataFrame, weight, instruments, resolved, fitted_on: dict) -> dict:
    """Fit and write each entry's map (the joint one on the joint mass recomputed from the
    instruments' raw outputs, as production combines them); returns what was fitted."""
    from survey_mass.infer.joint import load_joint
    from survey_mass.infer.masses import mass_columns
    from survey_mass.targets import TARGET_COLUMNS

    z, true_m = joined["z"].to_numpy(float), joined["log10_m500"].to_numpy(float)
    maps, report = {}, {}
    for inst in instruments:
        col = f"logm500_{inst}"
        data = fit_map(
            z, joined[col], joined[f"{col}_sigma"], true_m, fitted_on, weight, _snr(joined, inst)
        )
        write_map(resolved.ensembles[inst].path, data)
        maps[inst] = CalibrationMap(data)
        report[resolved.ensembles[inst].version] = _summary(data)
    if resolved.joint is not None:
        combined = mass_columns(
            joined[TARGET_COLUMNS],
            _raw_results(joined, instruments),
            load_joint(resolved.joint.path),
            maps,
        )
        data = fit_map(z, combined["logm500"], combined["logm500_sigma"], true_m, fitted_on, weight)
        write_map(resolved.joint.path, data)
        report[resolved.joint.version] = _summary(data)
    return report


def run_calibration(
    seed: int,
    n_clusters: int,
    instruments,
    models: dict,
    mock: dict,
    out: Path,
    client=None,
    massive: int = 0,
) -> dict:
    """Fit and write the maps of the job's entries; returns what was fitted, per entry.
    ``massive``: about that many clusters above 10^14.5 at z < 0.4 from a wide cone, with all its
    clusters below z 0.1, stand for the cone's own there (a stratified sample, weighted back to
    the mass function)."""
    from survey_mass.catalog.reader import read_mass_catalog
    from survey_mass.runner.job import run_job
    from survey_mass.validate.truth import mock_truth
    from survey_mass.zoo.registry import resolve_models

    raw = {**models, "calibrated": False}
    spec = evaluation_spec(seed, n_clusters, instruments, raw, mock, str(out / "catalog"))
    spec = spec.model_copy(update={"name": f"calibrate-seed{seed}"})
    resolved = resolve_models(spec.models, spec.instruments)
    # the map being replaced may have been fitted on this seed: only training seeds count here
    refuse_training_seed(
        seed,
        {
            e.version: {k: v for k, v in e.manifest.items() if k != "calibration_map"}
            for e in resolved.entries.values()
        },
    )
    run_job(spec, client=client, progress=True)
    truth = mock_truth(spec.source.mock, spec.targets.footprint)[["target_id", "log10_m500"]]
    joined = read_mass_catalog(spec.output.url).merge(truth, on="target_id")
    fitted_on = {
        "seed": seed,
        "n_clusters": int(len(truth)),
        "universe": spec.source.mock.model_dump(mode="json"),
    }
    weight = None
    if massive:
        wide, cone, detected = run_massive(
            seed, massive, instruments, raw, mock, out, client, detections=True, low_z=True
        )
        joined, weight = stratified(
            joined, wide, spec.targets.footprint.radius_deg, cone.radius_deg, detected
        )
        fitted_on["massive"] = {
            "n_clusters": int(len(wide)),
            "radius_deg": cone.radius_deg,
            "low_z_max": LOW_Z_MAX,
            "psz2_snr_min": PSZ2_SNR_MIN,
        }
    report = fit_maps(joined, weight, spec.instruments, resolved, fitted_on)
    (out / "calibration.json").write_text(json.dumps(report, indent=1))
    return report
