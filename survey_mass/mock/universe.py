"""The mock universe: clusters with known masses and hidden physical state, over any footprint.

Clusters are drawn per nested HEALPix pixel at a fixed base order, each pixel with its own random
stream keyed by (seed, pixel): the same seed gives the same universe bit for bit, whatever the job's
shard order or number of workers, and a footprint of any size streams pixel by pixel.

Relations (true M500c in Msun, h = 0.7):
- Mass function: Tinker et al. 2008 for M500c via colossus, flat LCDM of ``constants.COSMOLOGY``
  with sigma8 = 0.8, n_s = 0.96.
- L_X (0.5-7 keV, cylinder within R500, core-excised part): 1.2e44 E(z)^(7/3) (M/3e14)^1.6 erg/s,
  lognormal scatter 0.20 in ln (core-excised scatter, Pratt et al. 2009); cool cores add a compact
  core component that drives the core-included scatter to ~0.4.
- Y_500 (Arnaud et al. 2010): E(z)^(-2/3) D_A^2 Y = 10^-4.739 (M/3e14)^1.787 Mpc^2, scatter 0.12 ln.
- Richness: lambda = 40 (M/1.7e14)^0.83, scatter 0.25 in ln at fixed mass (M ~ lambda^1.2,
  Simet et al. 2017 converted from M200m to M500c).
- Concentration: Duffy et al. 2008 c200c(M, z) with 0.15 dex scatter, c500 ~ 0.66 c200.
Deviates of L_X, Y and lambda are correlated through a covariance (gas fraction ties L_X and Y).

These are the v1 relations (``UniverseSpec.physics = "v1"``, the default: the shipped zoo was
trained on them). ``physics = "v2"`` keeps every draw above and replaces the mean relations of L_X,
Y and lambda by those of :mod:`.physics_v2` (hydrostatic bias in Y, richness evolution, K-corrected
L_X), then draws the Chandra pointing (roll, aim offset) of each cluster.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from astropy import units as u

from survey_mass.constants import COSMOLOGY, HUBBLE_H
from survey_mass.mock import physics_v2
from survey_mass.physics.cosmology import efunc, r500_mpc
from survey_mass.pixel_math import healpix
from survey_mass.spec.footprint import BoxFootprint, ConeFootprint
from survey_mass.spec.universe import UniverseSpec

#: Base order at which the universe is drawn (0.21 deg^2 pixels); shards of any order map onto it.
UNIVERSE_ORDER = 7
ID_PREFIX = "MOCK"

LX_NORM, LX_PIVOT, LX_SLOPE, LX_EZ = 1.2e44, 3e14, 1.6, 7.0 / 3.0
Y_NORM, Y_PIVOT, Y_SLOPE = 10**-4.739, 3e14, 1.787
LAMBDA_NORM, LAMBDA_PIVOT, LAMBDA_SLOPE = 40.0, 1.7e14, 0.83
#: ln-scatter and correlation of the (L_X core-excised, Y, lambda) deviates at fixed mass.
SCATTER_LN = np.array([0.20, 0.12, 0.25])
CORRELATION = np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.1], [0.1, 0.1, 1.0]])


@lru_cache(maxsize=8)
def _number_grid(lo: float, hi: float, z_min: float, z_max: float):
    """d^2N / dz dlog10M per deg^2 on a (z, log10 M) grid, from the Tinker 2008 mass function."""
    from colossus.cosmology import cosmology
    from colossus.lss import mass_function

    cosmology.setCosmology(
        "survey_mass",
        params=dict(
            flat=True, H0=COSMOLOGY.H0.value, Om0=COSMOLOGY.Om0, Ob0=0.045, sigma8=0.8, ns=0.96
        ),
        persistence="",
    )
    z = np.linspace(z_min, z_max, 120)
    log_m = np.linspace(lo, hi, 160)
    dn_dlnm = (
        np.array(
            [
                mass_function.massFunction(
                    10**log_m * HUBBLE_H, zi, mdef="500c", model="tinker08", q_out="dndlnM"
                )
                for zi in z
            ]
        )
        * HUBBLE_H**3
    )  # -> Mpc^-3
    dv_dz_dsr = COSMOLOGY.differential_comoving_volume(z).to_value(u.Mpc**3 / u.sr)
    per_deg2 = dv_dz_dsr * (np.pi / 180) ** 2
    return z, log_m, dn_dlnm * np.log(10) * per_deg2[:, None]


def clusters_per_deg2(spec: UniverseSpec) -> float:
    z, log_m, grid = _number_grid(spec.log10_m500_min, spec.log10_m500_max, spec.z_min, spec.z_max)
    return float(np.trapezoid(np.trapezoid(grid, log_m, axis=1), z)) * spec.density_scale


def _sample_z_mass(rng: np.random.Generator, n: int, spec: UniverseSpec):
    z, log_m, grid = _number_grid(spec.log10_m500_min, spec.log10_m500_max, spec.z_min, spec.z_max)
    cell = grid[:-1, :-1] + grid[1:, :-1] + grid[:-1, 1:] + grid[1:, 1:]
    prob = (cell / cell.sum()).ravel()
    k = rng.choice(prob.size, size=n, p=prob)
    iz, im = np.divmod(k, log_m.size - 1)
    zz = z[iz] + rng.random(n) * (z[1] - z[0])
    mm = log_m[im] + rng.random(n) * (log_m[1] - log_m[0])
    return zz, mm


#: base pixels kept per process: a shard's own (256 at shard order 3), reused while it renders
#: their cutouts; shards are submitted in pixel order, so neighbours share the few they span.
#: Larger, a worker's memory grew with the footprint (~30 KB a pixel up to the bound)
BASE_PIXEL_CACHE = 256


@lru_cache(maxsize=BASE_PIXEL_CACHE)
def base_pixel_clusters(spec: UniverseSpec, pixel: int) -> pd.DataFrame:
    """Every cluster of one base pixel, with its hidden state; cached per worker process."""
    rng = np.random.default_rng([spec.seed, UNIVERSE_ORDER, int(pixel)])
    hp = healpix(UNIVERSE_ORDER)
    area = hp.pixel_area.to_value(u.deg**2)
    n = rng.poisson(clusters_per_deg2(spec) * area)
    # uniform on the sphere inside the pixel: random sub-pixels of an equal-area refinement
    sub_order = 12
    sub = int(pixel) * 4 ** (sub_order - UNIVERSE_ORDER) + rng.integers(
        0, 4 ** (sub_order - UNIVERSE_ORDER), n
    )
    lon, lat = healpix(sub_order).healpix_to_lonlat(sub, dx=rng.random(n), dy=rng.random(n))
    z, log_m = _sample_z_mass(rng, n, spec)
    return pd.DataFrame(
        {
            "target_id": [f"{ID_PREFIX}-{int(pixel):07d}-{j:03d}" for j in range(n)],
            "ra": lon.to_value(u.deg),
            "dec": lat.to_value(u.deg),
            "z": z,
            "log10_m500": log_m,
            **hidden_state(rng, log_m, z, spec.physics),
        }
    )


def hidden_state(
    rng: np.random.Generator, log_m: np.ndarray, z: np.ndarray, physics: str = "v1"
) -> dict[str, np.ndarray]:
    """Per-cluster physical state that makes observables scatter and co-vary at fixed mass."""
    n = len(log_m)
    m = 10**log_m
    ez = efunc(z)
    r500 = r500_mpc(log_m, z)
    c200 = (
        5.71
        * (m / (2e12 / HUBBLE_H)) ** -0.084
        * (1 + z) ** -0.47
        * 10 ** (0.15 * rng.standard_normal(n))
    )
    merger = rng.random(n) < 0.2 + 0.2 * np.clip(z, 0, 1)  # mergers more common at high z
    cool_core = ~merger & (rng.random(n) < 0.5)
    cov = CORRELATION * np.outer(SCATTER_LN, SCATTER_LN)
    dev = rng.multivariate_normal(np.zeros(3), cov, size=n, method="cholesky")
    lx = LX_NORM * ez**LX_EZ * (m / LX_PIVOT) ** LX_SLOPE * np.exp(dev[:, 0])
    y500 = Y_NORM * ez ** (2 / 3) * (m / Y_PIVOT) ** Y_SLOPE * np.exp(dev[:, 1])  # D_A^2 Y [Mpc^2]
    richness = LAMBDA_NORM * (m / LAMBDA_PIVOT) ** LAMBDA_SLOPE * np.exp(dev[:, 2])
    # mis-centring of the catalogued position against the true centre: most well centred, 20% not
    miscentred = rng.random(n) < 0.2
    offset_r500 = np.where(miscentred, rng.rayleigh(0.3, n), rng.rayleigh(0.03, n))
    state = {
        "r500_mpc": r500,
        "c500": 0.66 * c200,
        "ellipticity": np.clip(rng.normal(0.15, 0.08, n) + 0.15 * merger, 0.0, 0.6),
        "position_angle": rng.uniform(0, np.pi, n),
        "merger": merger,
        "sub_offset_r500": np.where(merger, rng.uniform(0.3, 1.0, n), 0.0),
        "sub_fraction": np.where(merger, rng.uniform(0.1, 0.4, n), 0.0),
        "sub_angle": rng.uniform(0, 2 * np.pi, n),
        "cool_core": cool_core,
        "core_fraction": np.where(cool_core, np.exp(rng.normal(np.log(0.5), 0.5, n)), 0.0),
        "core_radius_r500": np.where(cool_core, 0.08, 0.16) * np.exp(rng.normal(0, 0.2, n)),
        "beta": np.clip(rng.normal(0.67, 0.05, n), 0.5, 0.85),
        "miscentre_mpc": offset_r500 * r500,
        "miscentre_angle": rng.uniform(0, 2 * np.pi, n),
        "lx_excised": lx,
        "y500_da2": y500,
        "richness_true": richness,
        "central_agn": cool_core & (rng.random(n) < 0.3),
        "xray_exposure_ks": np.exp(rng.uniform(np.log(40.0), np.log(160.0), n)),
        "stream": rng.integers(0, 2**62, n),
    }
    if physics == "v2":
        state.update(_v2_state(rng, m, z, dev))
    return state


def _v2_state(rng: np.random.Generator, m: np.ndarray, z: np.ndarray, dev: np.ndarray) -> dict:
    """The v2 relations on the same deviates, and the Chandra pointing (drawn after v1's draws)."""
    n = len(m)
    kt = physics_v2.temperature_kev(m, z)
    # bolometric L ~ E^(7/3) M^1.6, normalised to v1's 0.5-7 keV L_X at z = 0 and M = LX_PIVOT,
    # then emitted in the observed 0.5-7 keV band (K-correction)
    kt_pivot = physics_v2.temperature_kev(LX_PIVOT, 0.0)
    lx_bol = LX_NORM / physics_v2.band_fraction(kt_pivot, *physics_v2.LX_BAND_KEV)
    lx_bol = lx_bol * efunc(z) ** LX_EZ * (m / LX_PIVOT) ** LX_SLOPE * np.exp(dev[:, 0])
    z1 = 1 + z
    band = physics_v2.LX_BAND_KEV
    return {
        "physics": np.full(n, "v2"),
        "kt_kev": kt,
        "lx_excised": lx_bol * physics_v2.band_fraction(kt, band[0] * z1, band[1] * z1),
        "y500_da2": physics_v2.y500_da2_hse(m, z) * np.exp(dev[:, 1]),
        "richness_true": physics_v2.richness_mean(m, z) * np.exp(dev[:, 2]),
        # ACIS-I roll angle and aim point offset from the catalogued centre [arcmin]
        "xray_roll": rng.uniform(0, np.pi / 2, n),
        "xray_aim_dx": rng.normal(0, 0.5, n),
        "xray_aim_dy": rng.normal(0, 0.5, n),
    }


def parse_target_id(target_id: str) -> tuple[int, int]:
    """(base pixel, index in pixel) of a mock target id, or ValueError."""
    prefix, pixel, index = target_id.split("-")
    if prefix != ID_PREFIX:
        raise ValueError(f"{target_id!r} is not a mock-universe id")
    return int(pixel), int(index)


def cluster(spec: UniverseSpec, target_id: str) -> pd.Series:
    """The hidden state of one mock cluster, looked up by its id."""
    pixel, index = parse_target_id(target_id)
    return base_pixel_clusters(spec, pixel).iloc[index]


def clusters_in(
    spec: UniverseSpec, footprint: ConeFootprint | BoxFootprint, order: int, pixel: int
) -> pd.DataFrame:
    """Clusters of the universe inside the footprint and inside shard ``pixel`` at ``order``."""
    if order <= UNIVERSE_ORDER:
        shift = 2 * (UNIVERSE_ORDER - order)
        base = range(int(pixel) << shift, (int(pixel) + 1) << shift)
    else:
        base = [int(pixel) >> 2 * (order - UNIVERSE_ORDER)]
    frames = [base_pixel_clusters(spec, b) for b in base]
    df = (
        pd.concat([f for f in frames if len(f)], ignore_index=True)
        if any(len(f) for f in frames)
        else frames[0]
    )
    if order > UNIVERSE_ORDER and len(df):
        in_shard = healpix(order).lonlat_to_healpix(
            df["ra"].to_numpy() * u.deg, df["dec"].to_numpy() * u.deg
        )
        df = df[in_shard == pixel]
    return df[footprint.contains(df["ra"].to_numpy(), df["dec"].to_numpy())].reset_index(drop=True)
