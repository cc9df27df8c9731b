"""Evaluation that cannot flatter: fresh mock clusters, the production path, tables per bin.

``survey-mass evaluate --seed S`` draws a cone of the mock universe with a seed no zoo entry was
trained on (refused otherwise), weighs it with the real job path (Dask, the ensembles, the joint
model, the Parquet catalog) and compares every estimate with the true masses: bias (median and
mean), std, 68%/95% interval coverage and the slope of estimate on truth, overall, per redshift
bin and per quartile of the estimated mass (what users select on), plus the massive end
(M500 > 10^14.5, z < 0.4) per 0.15 dex of true mass. The markdown goes into
``benchmarks/RESULTS.md`` between markers, with the command that made it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from survey_mass.constants import GAUSS_95, Z_BINS
from survey_mass.errors import UserError
from survey_mass.validate.detections import detection_markdown, detection_tables
from survey_mass.validate.eddington import bias_markdown, bias_plot, bias_table

ESTIMATES = ("xray", "sz", "optical", "joint")
#: the massive end: true log10 M500 bins [Msun] at z < MASSIVE_Z_MAX
MASSIVE_EDGES = (14.5, 14.65, 14.8, 14.95, 15.1, 15.4)
MASSIVE_Z_MAX = 0.4
#: the nearby universe: a cone holds few clusters below this redshift (a small volume), so the
#: calibration sample takes them, of any mass, from the wide cone too
LOW_Z_MAX = 0.1
MARKER = "survey-mass evaluate"
#: the figure of estimate and bias against true mass, beside evaluation.md
BIAS_PLOT = "bias_vs_truth.png"


def training_seeds(manifest: dict) -> set[int]:
    """Every mock universe seed a manifest says its models were trained on."""
    seeds: set[int] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            universe = node.get("universe")
            if isinstance(universe, dict) and "seed" in universe:
                seeds.add(int(universe["seed"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(manifest)
    return seeds


def refuse_training_seed(seed: int, manifests: dict[str, dict]) -> None:
    used = {name: training_seeds(m) for name, m in manifests.items()}
    clash = sorted(name for name, seeds in used.items() if seed in seeds)
    if clash:
        raise UserError(
            f"--seed {seed} is a training or calibration seed of {', '.join(clash)}: clusters a "
            "model was fitted on flatter it; choose another seed"
        )


def _columns(est: str) -> tuple[str, str, str | None]:
    """(estimate, sigma, upper 95% bound or None) columns of an estimate."""
    if est == "joint":
        return "logm500", "logm500_sigma", "logm500_p97_5"
    return f"logm500_{est}", f"logm500_{est}_sigma", None


def stats_row(label: str, frame: pd.DataFrame, est: str) -> dict:
    """One row of a table: the numbers of ``est`` against the truth on ``frame``'s clusters."""
    col, sig, upper = _columns(est)
    ok = np.isfinite(frame[col].to_numpy(float))
    est_v, truth = frame[col].to_numpy(float)[ok], frame["log10_m500"].to_numpy(float)[ok]
    sigma = frame[sig].to_numpy(float)[ok]
    if upper:
        half95 = frame[upper].to_numpy(float)[ok] - est_v
    elif f"{col}_half95" in frame:  # the catalog's own (calibrated) 95% half-width
        half95 = frame[f"{col}_half95"].to_numpy(float)[ok]
    else:
        half95 = GAUSS_95 * sigma
    delta = est_v - truth
    nan = math.nan
    n = int(delta.size)
    prior_bit = _prior_bit(est)
    flags = frame["flags"].to_numpy()[ok] if "flags" in frame else np.zeros(n, int)
    slope = float(np.polyfit(truth, est_v, 1)[0]) if n > 2 and np.ptp(truth) > 0 else nan
    return {
        "bin": label,
        "n": n,
        "median_dex": float(np.median(delta)) if n else nan,
        "mean_dex": float(delta.mean()) if n else nan,
        "std_dex": float(delta.std(ddof=1)) if n > 1 else nan,
        "coverage_68": float(np.mean(np.abs(delta) <= sigma)) if n else nan,
        "coverage_95": float(np.mean(np.abs(delta) <= half95)) if n else nan,
        "slope": slope,
        "prior_fraction": float(np.mean((flags & prior_bit) > 0)) if n else nan,
    }


def _prior_bit(est: str) -> int:
    from survey_mass.catalog.schema import FLAG_JOINT_PRIOR, FLAG_PRIOR

    return FLAG_JOINT_PRIOR if est == "joint" else FLAG_PRIOR[est]


def estimate_table(joined: pd.DataFrame, est: str) -> list[dict]:
    """All clusters, each z bin, each quartile of the estimated mass."""
    col = _columns(est)[0]
    rows = [stats_row("all", joined, est)]
    z = joined["z"].to_numpy(float)
    for lo, hi in Z_BINS:
        rows.append(stats_row(f"z {lo:g}-{hi:g}", joined[(z >= lo) & (z < hi)], est))
    weighed = joined[np.isfinite(joined[col].to_numpy(float))]
    if len(weighed) >= 8:  # equal-count quartiles by rank: ties (the prior's value) split too
        order = np.argsort(weighed[col].to_numpy(float), kind="stable")
        for q, part in enumerate(np.array_split(order, 4)):
            values = weighed[col].to_numpy(float)[part]
            label = f"Q{q + 1} est {values.min():.2f}-{values.max():.2f}"
            rows.append(stats_row(label, weighed.iloc[part], est))
    return rows


def massive_table(joined: pd.DataFrame) -> list[dict]:
    """Per 0.15 dex of true mass above 10^14.5 at z < 0.4: each estimate's n and median error."""
    massive = joined[(joined["z"] < MASSIVE_Z_MAX) & (joined["log10_m500"] > MASSIVE_EDGES[0])]
    rows = []
    for lo, hi in zip(MASSIVE_EDGES[:-1], MASSIVE_EDGES[1:], strict=True):
        inside = massive[(massive["log10_m500"] >= lo) & (massive["log10_m500"] < hi)]
        row = {"bin": f"log M {lo:.2f}-{hi:.2f}", "n": int(len(inside))}
        for est in ESTIMATES:
            if _columns(est)[0] in inside:
                stats = stats_row("", inside, est)
                row[est] = {k: stats[k] for k in ("n", "median_dex", "std_dex")}
        rows.append(row)
    return rows


def _fmt(value, digits: int = 3, sign: bool = True) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def markdown(numbers: dict) -> str:
    """The tables of ``numbers`` as markdown, with the command that made them."""
    lines = [
        f"Command: `{numbers['command']}` ({numbers['n_clusters']} fresh clusters, seed "
        f"{numbers['seed']}, cone of {numbers['radius_deg']:.2f} deg; models "
        f"{', '.join(numbers['models'])}).",
        "",
    ]
    header = "| bin | n | median | mean | std | 68% | 95% | slope | prior |"
    for est, rows in numbers["tables"].items():
        lines += [f"**{est}** (log10 M_est - log10 M_true [dex])", "", header]
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            lines.append(
                f"| {r['bin']} | {r['n']} | {_fmt(r['median_dex'])} | {_fmt(r['mean_dex'])} | "
                f"{_fmt(r['std_dex'], sign=False)} | {_fmt(r['coverage_68'], 2, False)} | "
                f"{_fmt(r['coverage_95'], 2, False)} | {_fmt(r['slope'], 2, False)} | "
                f"{_fmt(r['prior_fraction'], 2, False)} |"
            )
        lines.append("")
    lines += detection_markdown(numbers.get("detections", {}), _fmt)
    lines += bias_markdown(numbers.get("bias_vs_truth", {}), _fmt)
    ests = [e for e in ESTIMATES if e in numbers["tables"]]
    lines += [
        f"**Massive end** ({_massive_source(numbers)}): median error [dex] (n) per bin of "
        "true mass",
        "",
        "| true mass bin | " + " | ".join(ests) + " |",
        "|---|" + "---|" * len(ests),
    ]
    for r in numbers["massive"]:
        cells = [
            f"{_fmt(r[e]['median_dex'])} ({r[e]['n']})" if e in r and r[e]["n"] else "-"
            for e in ests
        ]
        lines.append(f"| {r['bin']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _massive_source(numbers: dict) -> str:
    if "n_massive" in numbers:
        return f"{numbers['n_massive']} clusters above 10^14.5 at z < 0.4 from a wide cone"
    return "the cone's clusters above 10^14.5 at z < 0.4"


def write_results(text: str, path: Path, physics: str = "v1") -> None:
    """Put ``text`` between the evaluation markers of ``path`` for this mock physics (appended
    the first time): each physics version keeps its own block, so v1 and v2 sit side by side."""
    marker = MARKER if physics == "v1" else f"{MARKER} (physics {physics})"
    begin, end = f"<!-- {marker}: begin -->", f"<!-- {marker}: end -->"
    block = f"{begin}\n{text}{end}"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        title = "the zoo" if physics == "v1" else f"the zoo on mock physics {physics}"
        new = old.rstrip("\n") + f"\n\n## Fresh-seed evaluation of {title}\n\n" + block + "\n"
    path.write_text(new)


def tables(joined: pd.DataFrame, instruments: list[str]) -> dict:
    ests = [*instruments, "joint"] if len(instruments) > 1 else list(instruments)
    return {est: estimate_table(joined, est) for est in ests}


def save(numbers: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(numbers, indent=1))
    (out / "evaluation.md").write_text(markdown(numbers))
    return out / "evaluation.md"


def evaluation_spec(seed: int, n_clusters: int, instruments, models: dict, mock: dict, url: str):
    """A mock job over a cone holding about ``n_clusters`` clusters of universe ``seed``."""
    from survey_mass.mock.universe import clusters_per_deg2
    from survey_mass.spec.job import JobSpec
    from survey_mass.spec.universe import UniverseSpec

    universe = UniverseSpec(seed=seed, **mock)
    area = n_clusters / clusters_per_deg2(universe)
    radius = math.degrees(math.acos(1.0 - area / (2 * math.pi * math.degrees(1.0) ** 2)))
    return JobSpec.model_validate(
        {
            "name": f"evaluate-seed{seed}",
            "instruments": list(instruments),
            "targets": {
                "footprint": {"kind": "cone", "ra": 200.0, "dec": 30.0, "radius_deg": radius}
            },
            "source": {"kind": "mock", "mock": universe.model_dump()},
            "models": models,
            "output": {"url": url},
        }
    )


def in_massive_stratum(frame: pd.DataFrame) -> np.ndarray:
    """The massive end: true M500 above 10^14.5 at z < 0.4."""
    return (frame["z"].to_numpy(float) < MASSIVE_Z_MAX) & (
        frame["log10_m500"].to_numpy(float) > MASSIVE_EDGES[0]
    )


def in_calibration_stratum(frame: pd.DataFrame) -> np.ndarray:
    """What the calibration sample takes from the wide cone: the massive end and every cluster
    below ``LOW_Z_MAX``."""
    return in_massive_stratum(frame) | (frame["z"].to_numpy(float) < LOW_Z_MAX)


def massive_sample(
    seed: int, n: int, mock: dict, with_detections: bool = False, with_low_z: bool = False
):
    """(footprint, truth) of about ``n`` clusters above 10^14.5 at z < 0.4: a wide cone, as rare
    as they are (~0.1 per deg^2), so that the massive end is measured on hundreds, not a few;
    ``with_detections`` adds the cone's mock PSZ2 detections (S/N >= 4.5) of any mass and z
    (flagged in a ``psz2_detected`` column), ``with_low_z`` its clusters below ``LOW_Z_MAX`` of
    any mass."""
    from survey_mass.mock.universe import clusters_per_deg2
    from survey_mass.spec.footprint import ConeFootprint
    from survey_mass.spec.universe import UniverseSpec
    from survey_mass.validate.truth import mock_truth

    universe = UniverseSpec(seed=seed, **mock)
    rare = universe.model_copy(update={"log10_m500_min": MASSIVE_EDGES[0], "z_max": MASSIVE_Z_MAX})
    area = 1.2 * n / clusters_per_deg2(rare)
    radius = min(math.degrees(math.acos(1.0 - area / (2 * math.pi * math.degrees(1.0) ** 2))), 90)
    footprint = ConeFootprint(ra=200.0, dec=30.0, radius_deg=radius)
    truth = mock_truth(universe, footprint)
    keep = in_calibration_stratum(truth) if with_low_z else in_massive_stratum(truth)
    if with_detections:
        detected = truth["target_id"].isin(psz2_detections(universe, footprint))
        truth = truth.assign(psz2_detected=detected)
        keep |= detected.to_numpy()
    return footprint, truth[keep].reset_index(drop=True)


def psz2_detections(universe, footprint) -> list[str]:
    """target_ids of the mock PSZ2 detections (S/N >= 4.5) in ``footprint``."""
    from survey_mass.mock.external import mock_psz
    from survey_mass.validate.detections import PSZ2_SNR_MIN

    psz = mock_psz(universe, footprint)
    return psz.loc[psz["SNR"] >= PSZ2_SNR_MIN, "target_id"].tolist()


class MassiveRun(NamedTuple):
    """What :func:`run_massive` weighed, joined to truth, and where."""

    joined: pd.DataFrame
    footprint: object  # ConeFootprint
    detected: frozenset


def run_massive(
    seed,
    n,
    instruments,
    models: dict,
    mock: dict,
    out: Path,
    client=None,
    detections=False,
    low_z=False,
):
    """The massive end (with ``detections`` the mock PSZ2 detections, with ``low_z`` the nearby
    clusters) of a wide cone, weighed as a target catalog by the production path, joined to
    truth; the cone; and (with ``detections``) the ids of the cone's PSZ2 detections, weighed
    or not."""
    from survey_mass.catalog.reader import read_mass_catalog
    from survey_mass.runner.job import run_job

    footprint, truth = massive_sample(seed, n, mock, detections, low_z)
    out.mkdir(parents=True, exist_ok=True)
    targets = out / "massive_targets.csv"
    truth.rename(columns={"target_id": "id"})[["id", "ra", "dec", "z"]].to_csv(targets, index=False)
    spec = evaluation_spec(seed, 10, instruments, models, mock, str(out / "massive_catalog"))
    spec = spec.model_copy(
        update={
            "name": f"evaluate-massive-seed{seed}",
            "targets": spec.targets.model_copy(
                update={"catalog": str(targets), "footprint": footprint}
            ),
        }
    )
    run_job(spec, client=client, progress=True)
    catalog = read_mass_catalog(spec.output.url)
    joined = catalog.merge(truth[["target_id", "log10_m500"]], on="target_id", how="inner")
    detected = truth.loc[truth["psz2_detected"], "target_id"] if detections else []
    return MassiveRun(joined, footprint, frozenset(detected))


def run_evaluation(
    seed: int,
    n_clusters: int,
    instruments,
    models: dict,
    mock: dict,
    out: Path,
    command: str,
    client=None,
    massive: int = 0,
) -> dict:
    """Weigh a fresh cone with the production path and tabulate every estimate against truth;
    ``massive``: also weigh about that many massive low-z clusters for the massive-end table."""
    from survey_mass.catalog.reader import read_mass_catalog
    from survey_mass.runner.job import run_job
    from survey_mass.validate.truth import mock_truth
    from survey_mass.zoo.registry import resolve_models

    spec = evaluation_spec(seed, n_clusters, instruments, models, mock, str(out / "catalog"))
    resolved = resolve_models(spec.models, spec.instruments)
    manifests = {e.version: e.manifest for e in resolved.entries.values()}
    refuse_training_seed(seed, manifests)
    run_job(spec, client=client, progress=True)
    catalog = read_mass_catalog(spec.output.url)
    truth = mock_truth(spec.source.mock, spec.targets.footprint)[["target_id", "log10_m500"]]
    joined = catalog.merge(truth, on="target_id", how="inner")
    numbers = {
        "command": command,
        "seed": seed,
        "n_clusters": int(len(truth)),
        "n_weighed": int(len(joined)),
        "radius_deg": spec.targets.footprint.radius_deg,
        "universe": spec.source.mock.model_dump(mode="json"),
        "models": sorted(manifests),
        "tables": tables(joined, spec.instruments),
        "detections": detection_tables(
            joined, spec.source.mock, spec.targets.footprint, spec.instruments
        ),
        "bias_vs_truth": {est: bias_table(joined, est) for est in tables(joined, spec.instruments)},
        "massive": massive_table(joined),
    }
    if massive:
        wide, cone, _ = run_massive(seed, massive, instruments, models, mock, out, client, True)
        stratum = wide[in_massive_stratum(wide)]
        numbers["massive"], numbers["n_massive"] = massive_table(stratum), int(len(stratum))
        if "sz" in spec.instruments:  # Planck detections are too rare for the fresh cone
            wide_tables = detection_tables(wide, spec.source.mock, cone, ["sz"])
            where = f" in the wide cone ({cone.radius_deg:.1f} deg)"
            for key in ("sz", "sz_own"):
                wide_tables[key]["selection"] += where
                numbers["detections"][key] = wide_tables[key]
            numbers["detections"]["sz_own"]["selection"] += " among its massive and PSZ2 rows"
    save(numbers, out)
    (out / BIAS_PLOT).write_bytes(bias_plot(joined, numbers["bias_vs_truth"]))
    return numbers
