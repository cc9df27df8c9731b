"""A sparse sample of the whole sky's clusters, for statistics of the mock survey (realism).

The survey proper draws clusters pixel by pixel (:mod:`.universe`), which is right for a job but
slow for 10^4 deg^2. Here ``n ~ Poisson(density x area)`` clusters are drawn at once from the same
mass function and hidden-state model, placed uniformly on the *whole* sphere (so sky-dependent
noise is averaged as on the real sky), and the mock catalog makers of :mod:`.external` run on them
in one call: counts per deg^2 are ``rows / area``. The physics is the survey's own; only the
streams differ (no cluster here is a survey target).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from survey_mass.mock import universe
from survey_mass.mock.external import MAKERS
from survey_mass.spec.universe import UniverseSpec

SAMPLE_STREAM = 907


def sky_clusters(spec: UniverseSpec, area_deg2: float) -> pd.DataFrame:
    """Clusters of ``area_deg2`` of sky at the universe's density, spread over the whole sphere."""
    rng = np.random.default_rng([spec.seed, SAMPLE_STREAM, int(area_deg2)])
    n = int(rng.poisson(universe.clusters_per_deg2(spec) * area_deg2))
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    z, log_m = universe._sample_z_mass(rng, n, spec)
    ids = [f"{universe.ID_PREFIX}-{k // 1000:07d}-{k % 1000:03d}" for k in range(n)]
    return pd.DataFrame(
        {
            "target_id": ids,
            "ra": ra,
            "dec": dec,
            "z": z,
            "log10_m500": log_m,
            **universe.hidden_state(rng, log_m, z, spec.physics),
        }
    )


def sky_catalog(kind: str, spec: UniverseSpec, clusters: pd.DataFrame) -> pd.DataFrame:
    """Catalog ``kind`` (psz2, redmapper, weak_lensing) of ``clusters``, selection applied."""
    make = MAKERS[kind][0]
    if spec.physics == "v2":
        from survey_mass.mock.external_v2 import V2_MAKERS

        make = V2_MAKERS.get(kind, make)
    rng = np.random.default_rng([spec.seed, SAMPLE_STREAM, len(clusters), len(kind)])
    rows, keep = make(spec, clusters, rng)
    out = rows[keep].reset_index(drop=True)
    out["log10_m500_true"] = clusters["log10_m500"].to_numpy()[keep]
    return out


def _standard(rows: pd.DataFrame, mass_col: str | None, richness: bool = False) -> pd.DataFrame:
    """Catalog rows in the standard columns of ``survey_mass.references`` (+ truth, target_id)."""
    out = pd.DataFrame({"ra": rows["RA"], "dec": rows["dec"], "z": rows["redshift"]})
    if mass_col:
        out["logm500"] = np.log10(rows[mass_col].to_numpy() * 1e14)
    if richness:
        out["richness"] = rows["lambda"].to_numpy()
    out["log10_m500_true"] = rows["log10_m500_true"].to_numpy()
    out["target_id"] = rows["target_id"].to_numpy()
    return out


def mock_sky(spec: UniverseSpec, psz2_area_deg2: float, redmapper_area_deg2: float) -> dict:
    """Mock PSZ2 over ``psz2_area_deg2``, the richness of its clusters with z (redMaPPer's
    selection applied), and a redMaPPer catalog over ``redmapper_area_deg2``; standard columns."""
    sky = sky_clusters(spec, psz2_area_deg2)
    psz2 = _standard(sky_catalog("psz2", spec, sky), "MSZ")
    detected = sky[sky["target_id"].isin(psz2.loc[psz2["z"].notna(), "target_id"])]
    rm_of_psz2 = _standard(sky_catalog("redmapper", spec, detected), None, richness=True)
    joined = psz2.merge(rm_of_psz2[["target_id", "richness"]], on="target_id")
    field = sky_clusters(spec, redmapper_area_deg2)
    redmapper = _standard(sky_catalog("redmapper", spec, field), None, richness=True)
    return {"psz2": psz2, "lambda_msz": joined, "redmapper": redmapper}


def twin_state(z: float, msz: float, physics: str) -> pd.Series:
    """A relaxed mock cluster at z with true mass MSZ/(1-b) on the mean Y relation of ``physics``
    (centred, round, universal profile): the mock twin of a real PSZ2 cluster."""
    from survey_mass.mock import physics_v2
    from survey_mass.physics.cosmology import r500_mpc

    m_true = msz / physics_v2.HSE_ONE_MINUS_B
    y = (
        physics_v2.y500_da2_hse(m_true, z)
        if physics == "v2"
        else universe.Y_NORM
        * float(universe.efunc(z)) ** (2 / 3)
        * (m_true / universe.Y_PIVOT) ** universe.Y_SLOPE
    )
    return pd.Series(
        dict(
            target_id=f"{universe.ID_PREFIX}-0000000-000",
            ra=0.0,
            dec=-60.0,
            z=z,
            log10_m500=np.log10(m_true),
            r500_mpc=float(r500_mpc(np.log10(m_true), z)),
            merger=False,
            cool_core=False,
            ellipticity=0.0,
            position_angle=0.0,
            miscentre_mpc=0.0,
            miscentre_angle=0.0,
            y500_da2=float(y),
            stream=0,
            physics=physics,
        )
    )


def mean_count_rate_r500(m_true, z, physics: str) -> np.ndarray:
    """Mean ACIS-I 0.5-7 keV count rate [1/s] inside R500 of clusters of true M500c [Msun] at z.

    The mean core-excised L_X of ``physics`` (v2: K-corrected), taken inside R500 for a beta = 2/3,
    r_c = 0.16 R500 model (the 0.15-1 R500 annulus holds 1/1.47 of it) plus the mean cool-core
    excess (40% of clusters x core fraction 0.5 = 0.2 L_excised).
    """
    from survey_mass.constants import ACIS_COUNTS_PER_ERG_CM2
    from survey_mass.mock import physics_v2
    from survey_mass.physics.cosmology import luminosity_distance_mpc

    m_true, z = np.asarray(m_true, float), np.asarray(z, float)
    lx = universe.LX_NORM * universe.efunc(z) ** universe.LX_EZ
    lx = lx * (m_true / universe.LX_PIVOT) ** universe.LX_SLOPE
    if physics == "v2":
        kt, kt0 = physics_v2.temperature_kev(m_true, z), physics_v2.temperature_kev(3e14, 0.0)
        band = physics_v2.band_fraction(kt, 0.5 * (1 + z), 7.0 * (1 + z))
        lx = lx / physics_v2.band_fraction(kt0, 0.5, 7.0) * band
    d_l = luminosity_distance_mpc(z) * 3.0857e24
    return lx * (1.47 + 0.2) * ACIS_COUNTS_PER_ERG_CM2 / (4 * np.pi * d_l**2)
