"""A zoo SZ entry on the one real Planck y cutout we have, beside Planck's and DeepPlanck's masses.

``shared/data/deepplanck/PSZ2G359.07-32.12.fits`` is DeepPlanck's own 96 x 96 cutout at 1.7'
pixels: the grid our SZ preprocessing makes, in y units, so it enters the ensemble as it is. Its
PSZ2 mass (MSZ, hydrostatic) and DeepPlanck's CNN mass come from ``DeepPlanck.csv`` (the same
folder). One cluster is a sanity check of units and geometry on real noise, not a measurement of
bias or scatter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

CLUSTER = "PSZ2G359.07-32.12"


def weigh_real_planck_cutout(deepplanck_dir: str | Path, entry: str = "sz-v2") -> dict:
    """log10 M500 [Msun] of the cutout: the entry's raw and calibrated values, MSZ, DeepPlanck."""
    from survey_mass.infer.calibration_map import load_map
    from survey_mass.infer.ensemble import FoldEnsemble
    from survey_mass.infer.sz_snr import matched_filter_snr
    from survey_mass.zoo.registry import resolve_entry, verify_manifest

    folder = Path(deepplanck_dir)
    hdu = fits.open(folder / f"{CLUSTER}.fits")[0]
    y = hdu.data.astype(np.float32)[None, :, :, None]
    z = float(hdu.header["Z"])
    path = resolve_entry(entry)
    ensemble = FoldEnsemble(path)
    raw = ensemble.predict(y, z=np.array([z]))
    row = {"cluster": CLUSTER, "z": z, "entry": ensemble.name}
    row["raw_log10_m500"] = float(raw.log10_m500[0])
    snr = matched_filter_snr(y, np)
    row["sz_snr"] = float(snr[0])
    calibration = load_map(path, verify_manifest(path))
    if calibration is not None:
        applied = calibration.apply([z], raw.log10_m500, raw.sigma, snr)
        row["log10_m500"] = float(applied.log10_m500[0])
        row["sigma_dex"] = float(applied.sigma[0])
        row["prior_dominated"] = bool(applied.prior[0])
    published = pd.read_csv(folder / "DeepPlanck.csv")
    match = published[published["cluster"] == f"{CLUSTER}.fits"].iloc[0]
    row["msz_log10_m500"] = float(match["Planck_mass"])  # PSZ2 MSZ, hydrostatic
    row["deepplanck_log10_m500"] = float(match["CNN_mass"])
    return row
