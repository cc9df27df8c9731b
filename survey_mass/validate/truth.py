"""The mock universe's truth over a footprint, as a reference catalog (catalogs/mock_truth.toml)."""

from __future__ import annotations

import pandas as pd

from survey_mass.mock.universe import UNIVERSE_ORDER, base_pixel_clusters
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import BoxFootprint, ConeFootprint
from survey_mass.spec.universe import UniverseSpec

COLUMNS = ["target_id", "ra", "dec", "z", "log10_m500"]


def mock_truth(spec: UniverseSpec, footprint: ConeFootprint | BoxFootprint) -> pd.DataFrame:
    """Every mock cluster inside ``footprint`` with its true log10 M500c [Msun]."""
    frames = []
    for pixel in footprint_pixels(footprint, UNIVERSE_ORDER):
        clusters = base_pixel_clusters(spec, int(pixel))
        inside = footprint.contains(clusters["ra"].to_numpy(), clusters["dec"].to_numpy())
        frames.append(clusters.loc[inside, COLUMNS])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
