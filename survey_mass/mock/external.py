"""Mock external catalogs of the mock universe's clusters: redMaPPer, weak lensing, Planck PSZ2.

Each has the columns of its real counterpart in ``shared/data/clusterdb`` (units in
``df.attrs["units"]``), plus ``target_id``, the mock universe's id of the cluster it observes (absent
from real catalogs; it lets validation compare against the truth). Catalogs are drawn per base
HEALPix pixel of the universe, from a stream keyed by (seed, pixel, catalog), for *every* cluster of
the pixel before the footprint cut: a cluster's entry does not depend on the footprint, the shard
order or the number of workers, and a footprint of any size streams pixel by pixel.

Models (M in Msun, true M500c):
- redMaPPer (Rykoff et al. 2014): lambda = the cluster's red members >= 0.2 L* inside R_lambda (the
  very galaxies of the optical image) + projected structures (Costanzi et al. 2019: for a fraction
  0.1 + 0.3 z of clusters, an exponential excess of mean 0.3 lambda) + background-subtraction
  noise 0.4 sqrt(lambda); z_lambda = z + N(0, 0.01 (1+z)); kept if lambda >= 20 and
  0.08 <= z_lambda <= 0.6; centred on the catalogued position. r500 (deg) from lambda through the
  clusterdb relation M500 = 8e14 (lambda e^-4.80)^(1/0.73).
- Weak lensing: a follow-up subset (30% of clusters with M500 > 2e14 at 0.05 < z < 0.7);
  ln M_WL = ln M500 - 0.05 + 0.20 N + sigma_stat N, sigma_stat = 0.10 + 0.25 z (bias and triaxiality
  scatter of Becker & Kravtsov 2011; shape noise growing with z): 20-30% in all.
- Planck PSZ2: Y5R500 from the y-map model plus Gaussian matched-filter noise sigma_Y(theta500)
  (``constants.PSZ2_SIGMA_Y_*``, calibrated on the real PSZ2 density); SNR = Y_obs / sigma_Y >= 4.5;
  MSZ = (1-b) M(Y_obs) inverting the Arnaud et al. 2010 Y-M relation for a universal profile, with
  1-b = 0.8, so MSZ is biased low by ~20%; redshift unknown for 25% (as in PSZ2; MSZ then NaN);
  positions at the true SZ centre plus a Planck positional error (4' sqrt(4.5/SNR), >= 0.7').
These are the v1 models; with ``UniverseSpec.physics = "v2"`` the PSZ2 and redMaPPer makers of
:mod:`.external_v2` replace them (Planck noise per sky region, SDSS depth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

from survey_mass.constants import (
    PLANCK_HYDROSTATIC_BIAS,
    PSZ2_SIGMA_Y_COMPACT,
    PSZ2_SIGMA_Y_SCALE,
    PSZ2_SNR_MIN,
    REDMAPPER_LAMBDA_MIN,
    REDMAPPER_Z_RANGE,
)
from survey_mass.mock import optical, sz
from survey_mass.mock.universe import (
    UNIVERSE_ORDER,
    Y_NORM,
    Y_PIVOT,
    Y_SLOPE,
    UniverseSpec,
    base_pixel_clusters,
    parse_target_id,
)
from survey_mass.physics.cosmology import angular_diameter_distance_mpc, efunc, r500_mpc
from survey_mass.pixel_math import footprint_pixels
from survey_mass.spec.footprint import BoxFootprint, ConeFootprint

CATALOG_STREAMS = {"redmapper": 101, "weak_lensing": 102, "psz2": 103}

REDMAPPER_UNITS = {
    "ID": "",
    "name": "",
    "RA": "deg",
    "dec": "deg",
    "redshift": "",
    "lambda": "",
    "r500": "deg",
    "target_id": "",
}
WL_UNITS = {
    "name": "",
    "RA": "deg",
    "dec": "deg",
    "redshift": "",
    "M500": "1e14 solMass",
    "M500_err": "1e14 solMass",
    "r500": "deg",
    "target_id": "",
}
PSZ2_UNITS = {
    "INDEX": "",
    "name": "",
    "RA": "deg",
    "dec": "deg",
    "redshift": "",
    "pos_err": "deg",
    "r500": "deg",
    "MSZ": "1e14 solMass",
    "MSZ_ERR_UP": "1e14 solMass",
    "MSZ_ERR_LOW": "1e14 solMass",
    "Y5R500": "1e-3 arcmin2",
    "Y5R500_ERR": "1e-3 arcmin2",
    "SNR": "",
    "target_id": "",
}

Maker = Callable[[UniverseSpec, pd.DataFrame, np.random.Generator], tuple[pd.DataFrame, np.ndarray]]


def _number(target_ids: pd.Series) -> np.ndarray:
    """A stable integer per mock cluster: base pixel * 1000 + index in pixel."""
    return np.array([p * 1000 + i for p, i in map(parse_target_id, target_ids)], dtype=np.int64)


def _iau_name(prefix: str, ra: np.ndarray, dec: np.ndarray) -> list[str]:
    """IAU-style 'JHHMMSS.s+DDMMSS.s' names (as redMaPPer's RMJ...)."""

    def sexagesimal(value: float, width: int) -> str:
        tenths = int(round(value * 36000))  # 0.1 s of time or of arc
        degrees, rest = divmod(tenths, 36000)
        minutes, rest = divmod(rest, 600)
        return f"{degrees:0{width}d}{minutes:02d}{rest // 10:02d}.{rest % 10}"

    return [
        f"{prefix}{sexagesimal(r / 15.0, 2)}{'-' if d < 0 else '+'}{sexagesimal(abs(d), 2)}"
        for r, d in zip(ra, dec, strict=True)
    ]


def _galactic_name(prefix: str, ra: np.ndarray, dec: np.ndarray) -> list[str]:
    """Planck-style 'Glll.ll+bb.bb' names."""
    if not len(ra):
        return []
    gal = SkyCoord(ra * u.deg, dec * u.deg).galactic
    return [
        f"{prefix}G{lon:06.2f}{lat:+06.2f}" for lon, lat in zip(gal.l.deg, gal.b.deg, strict=True)
    ]


def _r500_deg(log10_m500: np.ndarray, z: np.ndarray) -> np.ndarray:
    d_a = angular_diameter_distance_mpc(z)
    return np.degrees(r500_mpc(log10_m500, z) / d_a)


def _redmapper(spec: UniverseSpec, c: pd.DataFrame, rng: np.random.Generator):
    n = len(c)
    z = c["z"].to_numpy()
    lam_in = np.array(
        [
            optical.lambda_members(s, r, spec.seed)
            for s, r in zip(c["stream"], c["richness_true"], strict=True)
        ],
        float,
    )
    projected = rng.random(n) < 0.1 + 0.3 * z
    lam = lam_in + projected * rng.exponential(0.3 * np.maximum(lam_in, 1.0))
    lam = lam + 0.4 * np.sqrt(lam_in) * rng.standard_normal(n)
    z_lambda = z + 0.01 * (1 + z) * rng.standard_normal(n)
    keep = (
        (lam >= REDMAPPER_LAMBDA_MIN)
        & (z_lambda >= REDMAPPER_Z_RANGE[0])
        & (z_lambda <= REDMAPPER_Z_RANGE[1])
    )
    log_m = np.log10(8e14) + (np.log(np.maximum(lam, 1.0)) - 4.80) / 0.73 / np.log(10)
    ra, dec = c["ra"].to_numpy(), c["dec"].to_numpy()
    return pd.DataFrame(
        {
            "ID": _number(c["target_id"]),
            "name": "",  # named after selection (see NAMES)
            "RA": ra,
            "dec": dec,
            "redshift": z_lambda,
            "lambda": lam,
            "r500": _r500_deg(log_m, np.clip(z_lambda, 1e-3, None)),
            "target_id": c["target_id"].to_numpy(),
        }
    ), keep


def _weak_lensing(spec: UniverseSpec, c: pd.DataFrame, rng: np.random.Generator):
    n = len(c)
    z = c["z"].to_numpy()
    followed = (c["log10_m500"].to_numpy() > np.log10(2e14)) & (z > 0.05) & (z < 0.7)
    keep = followed & (rng.random(n) < 0.3)
    sigma_stat = 0.10 + 0.25 * z
    ln_m = (
        np.log(10 ** c["log10_m500"].to_numpy())
        - 0.05
        + 0.20 * rng.standard_normal(n)
        + sigma_stat * rng.standard_normal(n)
    )
    m_wl = np.exp(ln_m)
    ra, dec = c["ra"].to_numpy(), c["dec"].to_numpy()
    return pd.DataFrame(
        {
            "name": "",
            "RA": ra,
            "dec": dec,
            "redshift": z,
            "M500": m_wl / 1e14,
            "M500_err": sigma_stat * m_wl / 1e14,
            "r500": _r500_deg(np.log10(m_wl), z),
            "target_id": c["target_id"].to_numpy(),
        }
    ), keep


def true_centres(c: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) [deg] of the clusters' true centres, off the catalogued ones by the mis-centring.

    The offset is along +column / +row of the cutouts, whose RA axis runs east to the left.
    """
    d_a = angular_diameter_distance_mpc(c["z"].to_numpy())
    off = c["miscentre_mpc"].to_numpy() / d_a
    angle = c["miscentre_angle"].to_numpy()
    dec = c["dec"].to_numpy() + np.degrees(off * np.sin(angle))
    ra = c["ra"].to_numpy() - np.degrees(off * np.cos(angle)) / np.cos(
        np.radians(c["dec"].to_numpy())
    )
    return ra % 360.0, dec


def _psz2(spec: UniverseSpec, c: pd.DataFrame, rng: np.random.Generator):
    n = len(c)
    z = c["z"].to_numpy()
    d_a = angular_diameter_distance_mpc(z)
    theta500 = np.degrees(c["r500_mpc"].to_numpy() / d_a) * 60.0  # arcmin
    arcmin2 = (1 * u.arcmin**2).to_value(u.sr)
    y5 = sz.y5r500_sr(c) / arcmin2
    sigma_y = PSZ2_SIGMA_Y_COMPACT.to_value(u.arcmin**2) * np.hypot(
        1.0, theta500 / PSZ2_SIGMA_Y_SCALE.to_value(u.arcmin)
    )
    y_obs = y5 + sigma_y * rng.standard_normal(n)
    snr = y_obs / sigma_y
    keep = snr >= PSZ2_SNR_MIN
    known_z = rng.random(n) < 0.75
    # MSZ: Y_obs -> Y_sph(R500) for a universal profile -> Arnaud 2010 Y-M -> times (1-b)
    y_sph_da2 = (
        np.maximum(y_obs, 1e-3 * sigma_y) * arcmin2 / sz.y5r500_over_ysph("universal") * d_a**2
    )
    m_y = Y_PIVOT * (y_sph_da2 * efunc(z) ** (-2 / 3) / Y_NORM) ** (1 / Y_SLOPE)
    msz = np.where(known_z, PLANCK_HYDROSTATIC_BIAS * m_y, np.nan)
    msz_err = msz * sigma_y / np.maximum(y_obs, sigma_y) / Y_SLOPE
    pos_err = np.maximum(4.0 * np.sqrt(PSZ2_SNR_MIN / np.maximum(snr, 1.0)), 0.7) / 60.0  # deg
    ra_true, dec_true = true_centres(c)
    dec = dec_true + pos_err / np.sqrt(2) * rng.standard_normal(n)
    ra = (
        ra_true + pos_err / np.sqrt(2) * rng.standard_normal(n) / np.cos(np.radians(dec_true))
    ) % 360
    return pd.DataFrame(
        {
            "INDEX": _number(c["target_id"]),
            "name": "",
            "RA": ra,
            "dec": dec,
            "redshift": np.where(known_z, z, np.nan),
            "pos_err": pos_err,
            "r500": np.where(known_z, _r500_deg(np.log10(np.where(known_z, msz, 1e14)), z), np.nan),
            "MSZ": msz / 1e14,
            "MSZ_ERR_UP": msz_err / 1e14,
            "MSZ_ERR_LOW": msz_err / 1e14,
            "Y5R500": y_obs * 1e3,
            "Y5R500_ERR": sigma_y * 1e3,
            "SNR": snr,
            "target_id": c["target_id"].to_numpy(),
        }
    ), keep


#: Catalog names, IAU-style with an 'm' (mock) prefix so they cannot be taken for real clusters.
NAMES: dict[str, Callable[[np.ndarray, np.ndarray], list[str]]] = {
    "redmapper": lambda ra, dec: _iau_name("mRMJ", ra, dec),
    "weak_lensing": lambda ra, dec: _iau_name("mWLJ", ra, dec),
    "psz2": lambda ra, dec: _galactic_name("mPSZ2 ", ra, dec),
}

MAKERS: dict[str, tuple[Maker, dict[str, str]]] = {
    "redmapper": (_redmapper, REDMAPPER_UNITS),
    "weak_lensing": (_weak_lensing, WL_UNITS),
    "psz2": (_psz2, PSZ2_UNITS),
}


def pixel_catalog(
    kind: str,
    spec: UniverseSpec,
    pixel: int,
    footprint: ConeFootprint | BoxFootprint | None = None,
    *,
    select: bool = True,
) -> pd.DataFrame:
    """Catalog ``kind`` rows of one base pixel (order ``UNIVERSE_ORDER``), cut to ``footprint``.

    ``select=False`` keeps the clusters that the survey's selection would drop (for studying it).
    """
    if kind not in MAKERS:
        raise ValueError(f"unknown mock catalog {kind!r}; choose one of {sorted(MAKERS)}")
    make, units = MAKERS[kind]
    if spec.physics == "v2":
        from survey_mass.mock.external_v2 import V2_MAKERS

        make = V2_MAKERS.get(kind, make)
    clusters = base_pixel_clusters(spec, int(pixel))
    rng = np.random.default_rng([spec.seed, UNIVERSE_ORDER, int(pixel), CATALOG_STREAMS[kind]])
    rows, keep = make(spec, clusters, rng)
    if not select:
        keep = np.ones(len(rows), bool)
    if footprint is not None and len(clusters):
        keep = keep & footprint.contains(clusters["ra"].to_numpy(), clusters["dec"].to_numpy())
    out = rows[keep].reset_index(drop=True)
    out["name"] = pd.Series(
        NAMES[kind](out["RA"].to_numpy(), out["dec"].to_numpy()), index=out.index, dtype=str
    )
    out.attrs["units"] = dict(units)
    return out


def iter_catalog(
    kind: str, spec: UniverseSpec, footprint: ConeFootprint | BoxFootprint
) -> Iterator[pd.DataFrame]:
    """Catalog ``kind`` over a footprint, one base pixel at a time (memory-bounded)."""
    for pixel in footprint_pixels(footprint, UNIVERSE_ORDER):
        yield pixel_catalog(kind, spec, int(pixel), footprint)


def _catalog(kind: str, spec: UniverseSpec, footprint) -> pd.DataFrame:
    frames = [f for f in iter_catalog(kind, spec, footprint) if len(f)]
    if frames:
        out = pd.concat(frames, ignore_index=True)
    else:
        out = pixel_catalog(
            kind, spec, int(footprint_pixels(footprint, UNIVERSE_ORDER)[0]), footprint
        ).iloc[:0]
    out.attrs["units"] = dict(MAKERS[kind][1])
    return out


def mock_redmapper(spec: UniverseSpec, footprint: ConeFootprint | BoxFootprint) -> pd.DataFrame:
    """SDSS-redMaPPer-like catalog (ID, name, RA, dec, redshift = z_lambda, lambda, r500)."""
    return _catalog("redmapper", spec, footprint)


def mock_weak_lensing(spec: UniverseSpec, footprint: ConeFootprint | BoxFootprint) -> pd.DataFrame:
    """Weak-lensing M500 of a follow-up subset (name, RA, dec, redshift, M500, M500_err, r500)."""
    return _catalog("weak_lensing", spec, footprint)


def mock_psz(spec: UniverseSpec, footprint: ConeFootprint | BoxFootprint) -> pd.DataFrame:
    """Planck-PSZ2-like catalog with hydrostatic-biased MSZ, Y5R500 and SNR."""
    return _catalog("psz2", spec, footprint)
