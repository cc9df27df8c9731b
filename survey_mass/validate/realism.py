"""How realistic is the mock survey: its catalogs, maps and rates measured beside the real sky's.

``build_realism_report(out_dir)`` (``survey-mass report --realism --out DIR``) reads the real
catalogs through ``catalogs/*.toml`` (PSZ2, SDSS redMaPPer, DeepPlanck, MCXC) and the real Planck y
cutout from ``shared/data``, draws the same quantities from the mock survey (v2 physics by default;
whole-sky samples of :mod:`survey_mass.mock.sky_sample`), and writes ``realism.html`` with figures
and ``realism.json`` with every number, its tolerance and whether it holds:
- counts per deg^2 per z bin (PSZ2, redMaPPer): |mock/real - 1| <= 25% + 2 sigma (Poisson, both);
- median lambda and median Y_500 at fixed MSZ: within 0.05 dex + 2 sigma (sigma of the medians);
- y noise rms and autocorrelation FWHM outside the cluster: within 15%.
Reported without a tolerance: MSZ vs z, y power spectra, aperture Y of the real cutout's mock twin,
L500 at fixed mass and the ACIS-I count rates MCXC implies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from survey_mass.constants import ACIS_COUNTS_PER_ERG_CM2, PLANCK_PIXEL
from survey_mass.physics.cosmology import luminosity_distance_mpc

FULL_SKY_DEG2 = 41252.96
#: PSZ2 sky fraction 83.6% (Planck 2015 results XXVII, sec. 2); SDSS DR8 redMaPPer ~10,400 deg^2
#: (Rykoff et al. 2014, ApJ 785, 104, sec. 1 and 9).
REAL_AREA_DEG2 = {"psz2": 0.836 * FULL_SKY_DEG2, "redmapper": 10400.0}
PSZ2_Z_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6)
RM_Z_EDGES = (0.08, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55)
MSZ_EDGES = (14.3, 14.6, 14.8, 15.2)
TOLERANCE = {"counts": 0.25, "dex": 0.05, "noise": 0.15}
MOCK_RM_AREA_DEG2 = 2000.0
NOISE_MASK_PIX, NOISE_REALISATIONS = 15, 16
LAMBDA_MATCH_ARCMIN, LAMBDA_MATCH_DZ = 3.0, 0.05


@dataclass
class RealSky:
    psz2: pd.DataFrame
    redmapper: pd.DataFrame
    deepplanck: pd.DataFrame
    mcxc: pd.DataFrame
    cutout: np.ndarray
    cutout_header: fits.Header


def load_real_sky(shared_data: Path) -> RealSky:
    """The real catalogs (through catalogs/*.toml, files from ``shared_data``) and y cutout."""
    from survey_mass.references import load_definition, read_catalog

    def path(name):
        return str(
            Path(shared_data) / Path(load_definition(name).file.local).relative_to("../shared/data")
        )

    paths = {n: path(n) for n in ("psz2", "sdss_redmapper", "deepplanck", "mcxc")}
    cut = Path(shared_data) / "deepplanck" / "PSZ2G359.07-32.12.fits"
    with fits.open(cut) as hdul:
        data, header = hdul[0].data.astype(float), hdul[0].header.copy()
    return RealSky(
        *(read_catalog(n, via="local", paths=paths) for n in paths),
        cutout=data,
        cutout_header=header,
    )


# --- statistics, the same for the real and the mock sky -----------------------------------------
def counts(z, edges, area_deg2: float) -> dict:
    """Rows per z bin, per 1000 deg^2, with the fractional Poisson error."""
    n = np.histogram(np.asarray(z, float), bins=edges)[0]
    return {
        "edges": list(edges),
        "n": n.tolist(),
        "per_1000deg2": (n / area_deg2 * 1000).tolist(),
        "poisson_frac": (1 / np.sqrt(np.maximum(n, 1))).tolist(),
    }


def binned_median(x, y, edges) -> dict:
    """Median of log10 y in x bins, with the standard error of the median (1.2533 sigma/sqrt n)."""
    x, y = np.asarray(x, float), np.log10(np.asarray(y, float))
    med, err, n = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        s = y[(x >= lo) & (x < hi) & np.isfinite(y)]
        n.append(int(s.size))
        med.append(float(np.median(s)) if s.size else float("nan"))
        err.append(float(1.2533 * np.std(s) / np.sqrt(s.size)) if s.size > 1 else float("nan"))
    return {"edges": list(edges), "n": n, "median_log10": med, "error_log10": err}


def lambda_msz_match(psz2: pd.DataFrame, redmapper: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(log10 MSZ, lambda) of PSZ2 clusters with a redMaPPer cluster within 3' and |dz| < 0.05."""
    p = psz2[psz2["z"].notna() & psz2["logm500"].notna()]
    a = SkyCoord(p["ra"].to_numpy() * u.deg, p["dec"].to_numpy() * u.deg)
    b = SkyCoord(redmapper["ra"].to_numpy() * u.deg, redmapper["dec"].to_numpy() * u.deg)
    idx, sep, _ = a.match_to_catalog_sky(b)
    dz = np.abs(redmapper["z"].to_numpy()[idx] - p["z"].to_numpy())
    ok = (sep < LAMBDA_MATCH_ARCMIN * u.arcmin) & (dz < LAMBDA_MATCH_DZ)
    return p["logm500"].to_numpy()[ok], redmapper["richness"].to_numpy()[idx][ok]


def _mask(n: int, radius: float) -> np.ndarray:
    yy, xx = np.indices((n, n)) - (n - 1) / 2
    return (np.hypot(xx, yy) > radius).astype(float)


def noise_stats(ymap: np.ndarray, radius: float = NOISE_MASK_PIX) -> dict:
    """rms [y], autocorrelation FWHM [px] and pseudo-C_l [sr] outside ``radius`` px of the centre.

    The autocorrelation is the masked one (FFT of the masked map over FFT of the mask), averaged
    in rings; its FWHM is twice the radius where it first falls below 1/2.
    """
    n = ymap.shape[0]
    w = _mask(n, radius)
    m = (ymap - (ymap * w).sum() / w.sum()) * w
    big = 2 * n
    num = np.fft.irfft2(np.abs(np.fft.rfft2(m, s=(big, big))) ** 2, s=(big, big))
    den = np.fft.irfft2(np.abs(np.fft.rfft2(w, s=(big, big))) ** 2, s=(big, big))
    acf = np.fft.fftshift(num / np.maximum(den, 1.0))
    acf = acf / acf[n, n]
    r = np.hypot(*(np.indices((big, big)) - n))
    prof = np.array([acf[(r >= a - 0.5) & (r < a + 0.5)].mean() for a in range(25)])
    i = int(np.argmax(prof < 0.5))
    half = i - 1 + (prof[i - 1] - 0.5) / (prof[i - 1] - prof[i])
    pixel = PLANCK_PIXEL.to_value(u.rad)
    power = np.abs(np.fft.fft2(m)) ** 2 * pixel**2 / n**2 / np.mean(w**2)
    k = np.fft.fftfreq(n, d=pixel)
    ell = 2 * np.pi * np.hypot(k[:, None], k[None, :])
    edges = np.geomspace(100, 6400, 15)
    cl = [
        float(power[(ell >= a) & (ell < b)].mean()) if ((ell >= a) & (ell < b)).any() else None
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    return {
        "rms": float(ymap[w > 0].std()),
        "acf_fwhm_px": float(2 * half),
        "acf_profile": prof.tolist(),
        "ell": np.sqrt(edges[:-1] * edges[1:]).tolist(),
        "cl": cl,
    }


def deepplanck_y_relation(dp: pd.DataFrame) -> dict:
    """log10 Y_500 = a + b (log10 M_CNN - 14.6) fitted on the DeepPlanck table, with its rms.

    The table's Y_500 turns out to be a function of its CNN mass alone (rms ~0.004 dex), so
    Y_500 at fixed MSZ measures M_CNN at fixed MSZ: the hydrostatic bias.
    """
    x, y = dp["logm500"].to_numpy() - 14.6, np.log10(dp["y500"].to_numpy())
    b, a = np.polyfit(x, y, 1)
    return {"a": float(a), "b": float(b), "rms_dex": float(np.std(y - a - b * x))}


def y_map_numbers(real: RealSky, universe) -> dict:
    """Noise rms / autocorrelation / spectra of the real cutout and of its mock twin's maps, and
    the aperture Y (inside 10 px, 17') of the real cutout over the twin's noiseless one."""
    from survey_mass.mock import sz
    from survey_mass.mock.sky_sample import twin_state

    header = real.cutout_header
    twin = twin_state(float(header["Z"]), float(header["M500"]) * 1e14, universe.physics)
    maps = [sz.y_map(twin, seed) for seed in range(NOISE_REALISATIONS)]
    stats = [noise_stats(m) for m in maps]
    mock = {
        "rms": float(np.mean([s["rms"] for s in stats])),
        "acf_fwhm_px": float(np.mean([s["acf_fwhm_px"] for s in stats])),
        "acf_profile": np.mean([s["acf_profile"] for s in stats], axis=0).tolist(),
        "ell": stats[0]["ell"],
        "cl": [
            None if c is None else float(np.mean([s["cl"][i] for s in stats]))
            for i, c in enumerate(stats[0]["cl"])
        ],
    }
    inside = 1.0 - _mask(real.cutout.shape[0], 10.0)
    ring = _mask(real.cutout.shape[0], 25.0)

    def aperture(m):
        return float(((m - m[ring > 0].mean()) * inside).sum())

    clean = sz.y_map(twin, 0, noise=False)
    return {
        "real": noise_stats(real.cutout),
        "mock": mock,
        "aperture_y_real_over_mock_twin": aperture(real.cutout) / aperture(clean),
    }


def xray_numbers(real: RealSky, universe) -> dict:
    """MCXC L500 [0.1-2.4 keV] and the ACIS-I 0.5-7 keV count rate it implies, beside the mock's
    mean rate at the same hydrostatic mass (true mass M500/(1-b)) and z, per z bin."""
    from survey_mass.mock import physics_v2
    from survey_mass.mock.sky_sample import mean_count_rate_r500

    mc = real.mcxc[(real.mcxc["z"] > 0.03) & (real.mcxc["z"] < 0.6)]
    z, m_hse = mc["z"].to_numpy(), 10 ** mc["logm500"].to_numpy()
    m_true = m_hse / physics_v2.HSE_ONE_MINUS_B
    kt = physics_v2.temperature_kev(m_true, z)
    d_l = luminosity_distance_mpc(z) * 3.0857e24
    obs_over_soft = physics_v2.band_fraction(kt, 0.5 * (1 + z), 7.0 * (1 + z)) / (
        physics_v2.band_fraction(kt, 0.1, 2.4)
    )
    rate_real = (
        mc["l500_1e44"].to_numpy()
        * 1e44
        * obs_over_soft
        * ACIS_COUNTS_PER_ERG_CM2
        / (4 * np.pi * d_l**2)
    )
    rate_mock = mean_count_rate_r500(m_true, z, universe.physics)
    ratio = np.log10(rate_mock / rate_real)
    rows = []
    for lo, hi in zip(PSZ2_Z_EDGES[:-1], PSZ2_Z_EDGES[1:], strict=True):
        s = (z >= lo) & (z < hi)
        rows.append(
            {
                "z": [lo, hi],
                "n": int(s.sum()),
                "median_rate_real": float(np.median(rate_real[s])) if s.any() else None,
                "median_log10_mock_over_real": float(np.median(ratio[s])) if s.any() else None,
            }
        )
    return {
        "per_z_bin": rows,
        "note": "MCXC M500 comes from L500 (REXCESS L-M): this checks the "
        "mock L-M normalisation against that relation, not an independent mass",
    }


# --- comparison, figures, files ----------------------------------------------------------------
def _count_check(real: dict, mock: dict) -> list[dict]:
    rows = []
    for i, lo in enumerate(real["edges"][:-1]):
        r, m = real["per_1000deg2"][i], mock["per_1000deg2"][i]
        sigma = np.hypot(real["poisson_frac"][i], mock["poisson_frac"][i]) * (m / r if r else 0)
        allowed = TOLERANCE["counts"] + 2 * sigma
        rows.append(
            {
                "z": [lo, real["edges"][i + 1]],
                "real": r,
                "mock": m,
                "n_real": real["n"][i],
                "n_mock": mock["n"][i],
                "ratio": m / r if r else None,
                "allowed": float(allowed),
                "ok": bool(r and abs(m / r - 1) <= allowed),
            }
        )
    return rows


def _median_check(real: dict, mock: dict) -> list[dict]:
    rows = []
    for i, lo in enumerate(real["edges"][:-1]):
        r, m = real["median_log10"][i], mock["median_log10"][i]
        sigma = float(np.hypot(real["error_log10"][i], mock["error_log10"][i]))
        allowed = TOLERANCE["dex"] + 2 * sigma
        rows.append(
            {
                "log10_msz": [lo, real["edges"][i + 1]],
                "real": r,
                "mock": m,
                "n_real": real["n"][i],
                "n_mock": mock["n"][i],
                "diff_dex": m - r,
                "allowed": allowed,
                "ok": bool(abs(m - r) <= allowed),
            }
        )
    return rows


def _noise_check(ymaps: dict) -> dict:
    def row(key):
        ratio = ymaps["mock"][key] / ymaps["real"][key]
        return {
            "real": ymaps["real"][key],
            "mock": ymaps["mock"][key],
            "ratio": ratio,
            "ok": bool(abs(ratio - 1) <= TOLERANCE["noise"]),
        }

    return {key: row(key) for key in ("rms", "acf_fwhm_px")}


def realism_numbers(real: RealSky, universe) -> dict:
    """Every realism number of the mock universe ``universe`` against the real sky."""
    from survey_mass.mock.sky_sample import mock_sky

    mock = mock_sky(universe, FULL_SKY_DEG2, MOCK_RM_AREA_DEG2)
    from survey_mass.mock.external_v2 import PSZ2_MASK_B_DEG

    # the mock's sky behind the PSZ2 mask detects nothing: count per unmasked deg^2, as the real
    masked = np.sin(np.radians(PSZ2_MASK_B_DEG)) if universe.physics == "v2" else 0.0
    mock_area_psz2 = FULL_SKY_DEG2 * (1 - masked)
    psz2 = _count_check(
        counts(real.psz2["z"].dropna(), PSZ2_Z_EDGES, REAL_AREA_DEG2["psz2"]),
        counts(mock["psz2"]["z"].dropna(), PSZ2_Z_EDGES, mock_area_psz2),
    )
    rm = _count_check(
        counts(real.redmapper["z"], RM_Z_EDGES, REAL_AREA_DEG2["redmapper"]),
        counts(mock["redmapper"]["z"], RM_Z_EDGES, MOCK_RM_AREA_DEG2),
    )
    logm, lam = lambda_msz_match(real.psz2, real.redmapper)
    joined = mock["lambda_msz"]
    lam_check = _median_check(
        binned_median(logm, lam, MSZ_EDGES),
        binned_median(joined["logm500"], joined["richness"], MSZ_EDGES),
    )
    rel = deepplanck_y_relation(real.deepplanck)
    mp = mock["psz2"].dropna(subset=["z"])
    y_mock = 10 ** (rel["a"] + rel["b"] * (mp["log10_m500_true"].to_numpy() - 14.6))
    y_check = _median_check(
        binned_median(real.deepplanck["logm500_planck"], real.deepplanck["y500"], MSZ_EDGES),
        binned_median(mp["logm500"], y_mock, MSZ_EDGES),
    )
    ymaps = y_map_numbers(real, universe)
    noise = _noise_check(ymaps)
    mass_z = {
        "real": binned_median(real.psz2["z"], 10 ** real.psz2["logm500"], PSZ2_Z_EDGES),
        "mock": binned_median(mp["z"], 10 ** mp["logm500"], PSZ2_Z_EDGES),
    }
    return {
        "universe": universe.model_dump(mode="json") | {"physics": universe.physics},
        "tolerance": TOLERANCE,
        "psz2_counts": psz2,
        "redmapper_counts": rm,
        "lambda_at_msz": lam_check,
        "y500_at_msz": y_check,
        "deepplanck_y_relation": rel,
        "y_noise": noise,
        "y_maps": ymaps,
        "psz2_msz_vs_z": mass_z,
        "xray_vs_mcxc": xray_numbers(real, universe),
        "_scatter": {
            "real_psz2": real.psz2[["z", "logm500"]].dropna(),
            "mock_psz2": mp[["z", "logm500"]],
            "real_lambda": (logm, lam),
            "mock_lambda": (joined["logm500"], joined["richness"]),
        },
    }


def build_realism_report(
    out_dir, universe=None, seed: int = 42, shared_data: Path | None = None
) -> tuple[Path, Path]:
    """Write ``realism.html`` (+ PNG figures) and ``realism.json`` to ``out_dir``; v2 by default."""
    from survey_mass.spec.universe import UniverseSpec
    from survey_mass.validate.realism_page import figures, page

    if universe is None:
        universe = UniverseSpec(seed=seed, physics="v2")
    if shared_data is None:
        shared_data = Path("../shared/data")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    numbers = realism_numbers(load_real_sky(Path(shared_data)), universe)
    files = {}
    for name, png in figures(numbers).items():
        (out / f"realism_{name}.png").write_bytes(png)
        files[name] = f"realism_{name}.png"
    numbers.pop("_scatter")
    html_path, json_path = out / "realism.html", out / "realism.json"
    html_path.write_text(page(numbers, files))
    json_path.write_text(json.dumps(numbers, indent=1, default=float))
    return html_path, json_path
