"""Masses against real weak-lensing (WL) masses, and the mock survey's against its own WL masses.

For each catalog (PSZ2 MSZ, MCXC, DeepPlanck, redMaPPer, our own mass catalogs) and each WL table
(catalogs/wl_*.toml and the combined wl_combined), every WL cluster takes its nearest catalog
entry within ``radius_arcmin`` with |z - z_WL| <= ``dz_scaled`` (1 + z_WL) (crossmatch.sky_match,
WL table on the left). Masses are made comparable first (references/masses.py: same definition,
h = 0.7, or a refusal). On delta = log10 M - log10 M_WL it reports the median and mean with
bootstrap 68% intervals (``bootstrap`` resamples, fixed ``seed``), the scatter (standard
deviation, and 1.4826 MAD), and the hydrostatic bias (1-b) = 10^mean(delta), i.e. M = (1-b) M_WL.
The same numbers on the mock survey (its PSZ2- and redMaPPer-like catalogs against mock_wl, drawn
in ``mock.footprint``) sit beside them. Written as ``weak_lensing.html`` (plots inline),
``weak_lensing.json`` and ``summary.png`` (every catalog against the combined WL table).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from pydantic import Field

from survey_mass.crossmatch.match import MatchSpec, sky_match
from survey_mass.references.masses import comparable_log_masses
from survey_mass.spec.base import StrictModel
from survey_mass.validate import plots
from survey_mass.validate.report import ReportResult, jsonable

Loader = Callable[[str, dict | None], pd.DataFrame]
MOCK_NOTE = (
    "The mock WL catalog follows up a random 30% of clusters with M500 > 2e14 Msun at 0.05 < z < 0.7"
    " (survey_mass/mock/external.py); the real WL tables target massive, X-ray luminous, mostly"
    " low-z clusters, so the mock's overlaps with its PSZ2-like catalog are few."
)


class WeakLensingMock(StrictModel):
    reference: str = Field("mock_wl", description="the mock survey's WL catalog")
    counterparts: dict[str, str] = Field(
        default_factory=dict, description="real catalog -> its mock counterpart (psz2 = mock_psz)"
    )
    truth: str | None = Field("mock_truth", description="true masses, to show the mock WL's bias")
    spec: dict = Field(default_factory=lambda: {"seed": 42}, description="mock universe spec")
    footprint: dict = Field(description="where the mock catalogs are drawn (a cone or box)")


class WeakLensingSpec(StrictModel):
    catalogs: list[str] = Field(min_length=1, description="catalog names or mass catalog folders")
    references: list[str] = Field(min_length=1, description="WL catalog names (wl_*)")
    radius_arcmin: float = Field(3.0, gt=0)
    dz_scaled: float = Field(0.05, ge=0, description="max |z - z_WL| / (1 + z_WL)")
    bootstrap: int = Field(2000, ge=10)
    seed: int = 17
    conversion: str | None = Field(None, description="documented mass conversion (masses.py)")
    mock: WeakLensingMock | None = None
    out: str = Field("weak_lensing", description="sub-folder of the report job's out")


def matched_pairs(
    catalog: pd.DataFrame, wl: pd.DataFrame, spec: WeakLensingSpec, names: tuple[str, str]
) -> pd.DataFrame:
    """Matched (WL, catalog) pairs with both masses comparable (h = 0.7, one definition)."""
    log_m, log_wl, info = comparable_log_masses(
        catalog, wl, names[0], names[1], conversion=spec.conversion
    )
    match = MatchSpec(
        radius=spec.radius_arcmin * u.arcmin, dz=spec.dz_scaled, dz_scaled=True, mode="nearest"
    )
    pairs = sky_match(wl, catalog, match)
    left, right = pairs["left"].to_numpy(), pairs["right"].to_numpy()
    source = wl["source"].to_numpy()[left] if "source" in wl else np.full(len(left), names[1])
    out = pd.DataFrame(
        {
            "wl_id": wl["id"].to_numpy()[left],
            "id": catalog["id"].to_numpy()[right],
            "z_wl": wl["z"].to_numpy(float)[left],
            "sep_arcsec": pairs["sep_arcsec"].to_numpy(),
            "logm": log_m[right],
            "logm_wl": log_wl[left],
            "logm_wl_sigma": _column(wl, "logm500_sigma")[left],
            "source": source,
        }
    )
    out.attrs["masses"] = {k: info[k] for k in ("mass_definition", "h", "conversion")}
    return out


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(float) if name in frame else np.full(len(frame), np.nan)


def _interval(samples: np.ndarray) -> list[float]:
    return [float(np.percentile(samples, 16)), float(np.percentile(samples, 84))]


def wl_numbers(pairs: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """The numbers of one comparison from its matched pairs (see the module docstring)."""
    ok = np.isfinite(pairs["logm"]) & np.isfinite(pairs["logm_wl"])
    delta = (pairs["logm"] - pairs["logm_wl"]).to_numpy()[ok.to_numpy()]
    out = {"n_matched": int(len(pairs)), "n": int(delta.size)}
    out["n_by_source"] = {str(k): int(v) for k, v in pairs["source"][ok].value_counts().items()}
    if delta.size < 2:
        return out
    rng = np.random.default_rng(seed)
    boot = delta[rng.integers(0, delta.size, size=(n_boot, delta.size))]
    means, medians, stds = boot.mean(axis=1), np.median(boot, axis=1), boot.std(axis=1, ddof=1)
    out.update(
        median_dex=float(np.median(delta)),
        median_68=_interval(medians),
        mean_dex=float(delta.mean()),
        mean_68=_interval(means),
        scatter_dex=float(delta.std(ddof=1)),
        scatter_68=_interval(stds),
        mad_scatter_dex=float(1.4826 * np.median(np.abs(delta - np.median(delta)))),
        one_minus_b=float(10 ** delta.mean()),
        one_minus_b_68=[float(10**v) for v in _interval(means)],
    )
    return out


def _figure(pairs: pd.DataFrame, numbers: dict, title: str) -> bytes:
    """M vs M_WL with the 1:1 and (1-b) lines; residuals against z and against M_WL."""
    fig, axes = plots.plt.subplots(1, 3, figsize=(13, 4))
    delta = pairs["logm"] - pairs["logm_wl"]
    for source, group in pairs.groupby("source", sort=False):
        axes[0].errorbar(
            group["logm_wl"], group["logm"], xerr=group["logm_wl_sigma"], fmt="o", ms=4,
            alpha=0.7, label=str(source),
        )  # fmt: skip
        axes[1].plot(group["z_wl"], delta[group.index], "o", ms=4, alpha=0.7)
        axes[2].plot(group["logm_wl"], delta[group.index], "o", ms=4, alpha=0.7)
    finite = pairs[["logm", "logm_wl"]].to_numpy().ravel()
    finite = finite[np.isfinite(finite)]
    lo, hi = (finite.min() - 0.1, finite.max() + 0.1) if finite.size else (13.5, 15.5)
    axes[0].plot([lo, hi], [lo, hi], "k-", lw=1, label="1:1")
    if "one_minus_b" in numbers:
        shift = np.log10(numbers["one_minus_b"])
        axes[0].plot([lo, hi], [lo + shift, hi + shift], "r--", lw=1,
                     label=f"(1-b) = {numbers['one_minus_b']:.2f}")  # fmt: skip
        for ax in axes[1:]:
            ax.axhline(shift, color="r", ls="--", lw=1)
    for ax in axes[1:]:
        ax.axhline(0.0, color="k", lw=1)
        ax.set_ylabel("log10 M / M_WL")
    axes[0].set(xlabel="log10 M_WL [Msun]", ylabel="log10 M [Msun]", title=title)
    axes[1].set(xlabel="z (WL)")
    axes[2].set(xlabel="log10 M_WL [Msun]")
    axes[0].legend(fontsize=7)
    return plots.to_png(fig)


def summary_png(panels: list[tuple[str, pd.DataFrame, dict]]) -> bytes:
    """One M vs M_WL panel per comparison (real: against the combined WL table; mock: against the
    mock WL), four to a row: the README figure."""
    ncols = min(4, max(len(panels), 1))
    nrows = -(-max(len(panels), 1) // ncols)
    fig, axes = plots.plt.subplots(
        nrows, ncols, figsize=(3.6 * ncols, 3.6 * nrows), squeeze=False, layout="constrained"
    )
    for ax, (name, pairs, numbers) in zip(axes.ravel(), panels, strict=False):
        for source, group in pairs.groupby("source", sort=False):
            ax.plot(group["logm_wl"], group["logm"], "o", ms=3, alpha=0.7, label=str(source))
        ax.plot([13.3, 15.5], [13.3, 15.5], "k-", lw=1, label="1:1")
        title = f"{name}: N={numbers['n']}"
        if "one_minus_b" in numbers:
            shift = np.log10(numbers["one_minus_b"])
            ax.plot([13.3, 15.5], [13.3 + shift, 15.5 + shift], "r--", lw=1, label="(1-b)")
            title += f", (1-b)={numbers['one_minus_b']:.2f}"
        ax.set_title(title, fontsize=9)
        ax.set(xlim=(13.3, 15.5), ylim=(13.3, 15.5), xlabel="log10 M_WL [Msun]")
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("log10 M500c [Msun], h = 0.7")
    return plots.to_png(fig)


def _compare_all(spec: WeakLensingSpec, catalogs: dict, references: dict) -> tuple[list, dict]:
    rows, pair_sets = [], {}
    for name, table in catalogs.items():
        for ref, wl in references.items():
            pairs = matched_pairs(table, wl, spec, (name, ref))
            numbers = wl_numbers(pairs, spec.bootstrap, spec.seed)
            rows.append({"catalog": name, "reference": ref, **pairs.attrs["masses"], **numbers})
            pair_sets[(name, ref)] = pairs
    return rows, pair_sets


def _mock_side(
    spec: WeakLensingSpec, load: Loader, own_runs: dict[str, tuple[pd.DataFrame, dict]]
) -> tuple[list[dict], dict]:
    """Mock counterparts (and truth) against mock WL; our mock runs against their own mock WL."""
    rows, pairs = [], {}
    if spec.mock is not None:
        kwargs = {"spec": spec.mock.spec, "footprint": spec.mock.footprint}
        names = [*spec.mock.counterparts.values(), *filter(None, [spec.mock.truth])]
        catalogs = {name: load(name, kwargs) for name in dict.fromkeys(names)}
        wl = {spec.mock.reference: load(spec.mock.reference, kwargs)}
        rows, pairs = _compare_all(spec, catalogs, wl)
    reference = spec.mock.reference if spec.mock else "mock_wl"
    for name, (table, kwargs) in own_runs.items():
        more_rows, more_pairs = _compare_all(
            spec, {name: table}, {reference: load(reference, kwargs)}
        )
        rows, pairs = rows + more_rows, {**pairs, **more_pairs}
    return rows, pairs


def _load_catalogs(spec: WeakLensingSpec, load: Loader, kwargs_for: Callable):
    """Catalogs by name; mass catalog folders that do not exist (yet) are skipped with a note."""
    catalogs, own_runs, skipped = {}, {}, []
    for name in spec.catalogs:
        looks_like_folder = "/" in name or name.startswith(".")
        if looks_like_folder and not Path(name).exists() and "://" not in name:
            skipped.append(
                {"catalog": name, "reason": "no mass catalog at this path (not run yet)"}
            )
            continue
        catalogs[name] = load(name, None)
        if kwargs_for(name):  # a mock run: also against the mock WL of its own footprint
            own_runs[name] = (catalogs[name], kwargs_for(name))
    return catalogs, own_runs, skipped


def build_weak_lensing_report(
    spec: WeakLensingSpec, load: Loader, kwargs_for: Callable[[str], dict], out_dir: str | Path
) -> ReportResult:
    """Every catalog against every WL table, real and mock, as HTML + JSON + summary.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    catalogs, own_runs, skipped = _load_catalogs(spec, load, kwargs_for)
    references = {ref: load(ref, None) for ref in spec.references}
    real, real_pairs = _compare_all(spec, catalogs, references)
    mock, mock_pairs = _mock_side(spec, load, own_runs)
    numbers = {
        "title": "Masses against weak-lensing masses (real sky and mock survey)",
        "match": {
            "radius_arcmin": spec.radius_arcmin,
            "dz": f"|z - z_WL| <= {spec.dz_scaled} (1 + z_WL)",
            "mode": "nearest catalog entry to each WL cluster",
        },
        "definitions": {
            "delta": "log10 M - log10 M_WL, both M500c for h = 0.7",
            "one_minus_b": "10^mean(delta): M = (1-b) M_WL",
            "intervals": f"bootstrap 16-84th percentiles, {spec.bootstrap} resamples, seed {spec.seed}",
        },
        "references": {r: _describe(t) for r, t in references.items()},
        "real": real,
        "mock": mock,
        "side_by_side": _side_by_side(spec, real, mock),
        "mock_setup": spec.mock.model_dump() if spec.mock else None,
        "mock_note": MOCK_NOTE,
        "skipped": skipped,
    }
    figures = [(f"{c} vs {r}", _figure(p, _find(real + mock, c, r), f"{c} vs {r}"))
               for (c, r), p in {**real_pairs, **mock_pairs}.items() if len(p)]  # fmt: skip
    combined = spec.references[-1]
    panels = [(c, real_pairs[(c, combined)], _find(real, c, combined)) for c in catalogs]
    panels += [(f"mock: {c}", p, _find(mock, c, r)) for (c, r), p in mock_pairs.items()]
    panels = [panel for panel in panels if len(panel[1])]
    (out / "summary.png").write_bytes(summary_png(panels))
    for (c, r), p in {**real_pairs, **mock_pairs}.items():
        p.to_csv(out / f"pairs_{Path(c).name}_vs_{r}.csv", index=False)
    html_path, json_path = out / "weak_lensing.html", out / "weak_lensing.json"
    json_path.write_text(json.dumps(jsonable(numbers), indent=2))
    html_path.write_text(_page(numbers, figures))
    return ReportResult(html_path, json_path, numbers)


def _describe(table: pd.DataFrame) -> dict:
    keys = ("title", "citation", "mass_definition", "h", "caveats", "combine_rule")
    return {k: table.attrs[k] for k in keys if k in table.attrs} | {"rows": int(len(table))}


def _find(rows: list[dict], catalog: str, reference: str) -> dict:
    return next(r for r in rows if r["catalog"] == catalog and r["reference"] == reference)


def _side_by_side(spec: WeakLensingSpec, real: list[dict], mock: list[dict]) -> list[dict]:
    """Each real catalog against the combined WL table beside its mock counterpart vs mock WL."""
    if not real:
        return []
    combined = spec.references[-1]
    counterparts = spec.mock.counterparts if spec.mock else {}
    out = []
    for row in (r for r in real if r["reference"] == combined):
        own_run = any(m["catalog"] == row["catalog"] for m in mock)  # a mock run: its own mock WL
        twin = row["catalog"] if own_run else counterparts.get(row["catalog"])
        mock_row = next((m for m in mock if m["catalog"] == twin), None)
        out.append({"catalog": row["catalog"], "real": row, "mock_catalog": twin, "mock": mock_row})
    if spec.mock and spec.mock.truth:
        truth = next((m for m in mock if m["catalog"] == spec.mock.truth), None)
        out.append(
            {"catalog": "(truth)", "real": None, "mock_catalog": spec.mock.truth, "mock": truth}
        )
    return out


def _cells(row: dict | None) -> str:
    if not row:
        return "<td colspan=4>&ndash;</td>"

    def f(key, fmt="{:+.3f}"):
        value = row.get(key)
        return "&ndash;" if value is None else fmt.format(value)

    def iv(key, fmt="{:+.3f}"):
        pair = row.get(key)
        return "" if not pair else f" [{fmt.format(pair[0])}, {fmt.format(pair[1])}]"

    return (
        f"<td>{row['n']}/{row['n_matched']}</td><td>{f('median_dex')}{iv('median_68')}</td>"
        f"<td>{f('scatter_dex', '{:.3f}')}</td>"
        f"<td>{f('one_minus_b', '{:.2f}')}{iv('one_minus_b_68', '{:.2f}')}</td>"
    )


def _page(numbers: dict, figures: list[tuple[str, bytes]]) -> str:
    e = html.escape
    head = "<th>N/matched</th><th>median &delta; [68%]</th><th>scatter</th><th>(1-b) [68%]</th>"
    side = "".join(
        f"<tr><td>{e(r['catalog'])}</td>{_cells(r['real'])}<td>{e(r['mock_catalog']) if r['mock_catalog'] else '&ndash;'}</td>"
        f"{_cells(r['mock'])}</tr>"
        for r in numbers["side_by_side"]
    )
    full = "".join(
        f"<tr><td>{e(r['catalog'])}</td><td>{e(r['reference'])}</td>{_cells(r)}</tr>"
        for r in numbers["real"] + numbers["mock"]
    )
    refs = "".join(
        f"<li><b>{e(n)}</b> ({d['rows']} rows): {e(d.get('citation', ''))}. "
        f"{e('; '.join(d.get('caveats', [])))} {e(d.get('combine_rule', ''))}</li>"
        for n, d in numbers["references"].items()
    )
    imgs = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
        f'alt="{e(c)}"><figcaption>{e(c)}</figcaption></figure>'
        for c, png in figures
    )
    m, d = numbers["match"], numbers["definitions"]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(numbers["title"])}'
        "</title><style>body{font-family:system-ui,sans-serif;margin:2em}td,th{border:1px solid #ccc;"
        "padding:.3em .6em}table{border-collapse:collapse}img{max-width:100%}</style></head><body>"
        f"<h1>{e(numbers['title'])}</h1><p>Match: {m['radius_arcmin']}' radius, {e(m['dz'])}, "
        f"{e(m['mode'])}. &delta; = {e(d['delta'])}; (1-b) = {e(d['one_minus_b'])}; intervals: "
        f"{e(d['intervals'])}.</p><h2>Real sky beside the mock survey</h2><table><tr><th>catalog</th>"
        f"{head}<th>mock counterpart</th>{head}</tr>{side}</table><p>{e(numbers['mock_note'])}</p>"
        f"<h2>Every comparison</h2><table><tr><th>catalog</th><th>WL table</th>{head}</tr>{full}"
        f"</table><h2>Weak-lensing tables</h2><ul>{refs}</ul><h2>Figures</h2>{imgs}</body></html>"
    )


def headline_lines(numbers: dict) -> list[str]:
    """The side-by-side table as text, for the command line."""
    lines = [
        "masses against weak lensing (median log10 M/M_WL [68%], scatter, (1-b)): real | mock",
    ]

    def cell(row):
        if not row:
            return "-"
        if "median_dex" not in row:
            return f"{(row or {}).get('n', 0):>4} matched"
        lo, hi = row["one_minus_b_68"]
        return (
            f"{row['n']:>4} {row['median_dex']:+.3f} [{row['median_68'][0]:+.3f},"
            f"{row['median_68'][1]:+.3f}] {row['scatter_dex']:.3f} {row['one_minus_b']:.2f}"
            f" [{lo:.2f},{hi:.2f}]"
        )

    for r in numbers["side_by_side"]:
        mock = f"{r['mock_catalog']}: {cell(r['mock'])}" if r["mock_catalog"] else "-"
        lines.append(f"  {r['catalog']:<16} {cell(r['real'])} | {mock}")
    return lines
