"""Write small mass catalogs with the real catalog writer, for crossmatch and report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u

from survey_mass.catalog.paths import CatalogLayout
from survey_mass.catalog.schema import catalog_schema, quarantine_schema
from survey_mass.catalog.writer import finalize, write_shard
from survey_mass.pixel_math import SPATIAL_INDEX_COLUMN as SPATIAL_INDEX
from survey_mass.pixel_math import healpix


def write_mass_catalog(
    root: Path, rows: pd.DataFrame, order: int, instruments=("sz",), job: dict | None = None
) -> str:
    """A finished catalog at ``root`` holding ``rows`` (target_id, ra, dec, z, logm500[, _sigma]).

    ``job`` is recorded in provenance.json as the run's job spec (e.g. a mock source and footprint).
    """
    instruments = list(instruments)
    layout = CatalogLayout(str(root))
    n = len(rows)
    full = pd.DataFrame(
        {
            "target_id": rows["target_id"].astype(str),
            "ra": rows["ra"].to_numpy(float),
            "dec": rows["dec"].to_numpy(float),
            "z": rows["z"].to_numpy(float),
        }
    )
    full[SPATIAL_INDEX] = np.asarray(
        healpix(29).lonlat_to_healpix(
            full["ra"].to_numpy() * u.deg, full["dec"].to_numpy() * u.deg
        ),
        dtype=np.int64,
    )
    logm = rows["logm500"].to_numpy(float)
    sigma = rows["logm500_sigma"].to_numpy(float) if "logm500_sigma" in rows else np.full(n, 0.1)
    for inst in instruments:
        full[f"logm500_{inst}"] = logm
        full[f"logm500_{inst}_sigma"] = sigma
        full[f"logm500_{inst}_half95"] = 1.96 * sigma
        full[f"logm500_{inst}_spread"] = np.full(n, 0.02)
    if "sz" in instruments:
        full["sz_snr"] = np.full(n, 5.0)
    full["logm500"] = logm
    full["logm500_sigma"] = sigma
    full["logm500_p16"] = logm - sigma
    full["logm500_p84"] = logm + sigma
    full["logm500_p2_5"] = logm - 1.96 * sigma
    full["logm500_p97_5"] = logm + 1.96 * sigma
    full["flags"] = np.zeros(n, np.int32)
    full["models"] = "test-v1"
    pixels = full[SPATIAL_INDEX].to_numpy() >> (2 * (29 - order))
    quarantine = pd.DataFrame({name: [] for name in quarantine_schema().names})
    assert set(catalog_schema(instruments).names) <= set(full.columns)
    markers = {
        int(pixel): write_shard(
            layout, order, int(pixel), full[pixels == pixel], quarantine, instruments, "test"
        )
        for pixel in np.unique(pixels)
    }
    finalize(
        layout,
        order,
        set(markers),
        instruments,
        {"order": order, "job": job or {}},
    )
    return str(root)
