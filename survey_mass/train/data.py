"""Training sets from the mock survey: model inputs and the truth behind them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from survey_mass.mock.source import MockSource
from survey_mass.mock.universe import (
    UNIVERSE_ORDER,
    UniverseSpec,
    clusters_in,
    clusters_per_deg2,
)
from survey_mass.pixel_math import footprint_pixels
from survey_mass.preprocess import PREPROCESSORS, TRAINING_PREPROCESSING
from survey_mass.sources.base import Target
from survey_mass.spec.footprint import ConeFootprint
from survey_mass.train.spec import TailSpec


def training_clusters(
    spec: UniverseSpec, n_clusters: int, ra: float = 40.0, dec: float = -30.0
) -> pd.DataFrame:
    """The first ``n_clusters`` mock clusters (by id) of a cone just large enough to hold them."""
    area = 1.3 * n_clusters / clusters_per_deg2(spec)
    radius = float(np.degrees(np.arccos(1 - area / (2 * np.pi * (180 / np.pi) ** 2))))
    footprint = ConeFootprint(ra=ra, dec=dec, radius_deg=min(radius, 180.0))
    frames = [
        clusters_in(spec, footprint, UNIVERSE_ORDER, p)
        for p in footprint_pixels(footprint, UNIVERSE_ORDER)
    ]
    truth = pd.concat([f for f in frames if len(f)], ignore_index=True).sort_values("target_id")
    if len(truth) < n_clusters:
        raise ValueError(
            f"only {len(truth)} clusters drawn, {n_clusters} asked; raise density_scale"
        )
    return truth.head(n_clusters).reset_index(drop=True)


def training_inputs(
    spec: UniverseSpec,
    truth: pd.DataFrame,
    instrument: str,
    xp=np,
    chunk: int = 128,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Model inputs for the truth table's clusters (those whose cutouts pass), and their rows."""
    source = MockSource(spec)
    preprocess = PREPROCESSORS[TRAINING_PREPROCESSING[instrument]]
    inputs, kept = [], []
    bar = tqdm(
        total=len(truth),
        desc=f"simulating {instrument} cutouts",
        unit="cluster",
        disable=not progress,
    )
    for start in range(0, len(truth), chunk):
        rows = truth.iloc[start : start + chunk]
        targets = [Target(r.target_id, r.ra, r.dec, r.z) for r in rows.itertuples()]
        cutouts = [c for c in source.cutouts(targets, instrument) if hasattr(c, "hdul")]
        prepared = preprocess(cutouts, xp)
        inputs.append(np.asarray(prepared.inputs))
        kept.extend(c.target.target_id for c in prepared.cutouts)
        bar.update(len(rows))
    bar.close()
    table = truth.set_index("target_id").loc[kept].reset_index()
    return np.concatenate(inputs), table


#: where a tail sample is drawn: the antipode of ``training_clusters``' default cone
TAIL_CONE = (220.0, 30.0)
#: prefix of a tail cluster's id, so it never collides with a main-sample id of the same pixel
TAIL_ID_PREFIX = "tail:"


def training_set(
    spec: UniverseSpec,
    n_clusters: int,
    instrument: str,
    progress: bool = True,
    tail: TailSpec | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Model inputs of the universe's first ``n_clusters`` clusters whose cutouts pass, and their
    truth rows: what every trainer starts from. With ``tail``, its massive clusters are appended
    (ids prefixed ``tail:``; column ``tail`` tells them apart)."""
    truth = training_clusters(spec, n_clusters)
    images, table = training_inputs(spec, truth, instrument, progress=progress)
    table["tail"] = False
    if tail is None:
        return images, table
    tail_spec = spec.model_copy(
        update={"log10_m500_min": max(tail.log10_m500_min, spec.log10_m500_min)}
    )
    tail_truth = training_clusters(tail_spec, tail.n_clusters, *TAIL_CONE)
    tail_images, tail_table = training_inputs(tail_spec, tail_truth, instrument, progress=progress)
    tail_table["target_id"] = TAIL_ID_PREFIX + tail_table["target_id"].astype(str)
    tail_table["tail"] = True
    return np.concatenate([images, tail_images]), pd.concat([table, tail_table], ignore_index=True)
