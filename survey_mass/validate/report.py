"""The validation report: predicted masses against reference catalogs, as HTML and JSON.

``build_report`` crossmatches the predictions with each reference (nearest match within a radius
and an optional redshift tolerance), computes the numbers of :mod:`survey_mass.validate.metrics`
for every mass estimate present (joint and per instrument), and writes ``report.html``
(self-contained: CSS inline, plots as base64 PNG), ``report.json`` (every number of the page, NaN
as null) and ``matches_<reference>.csv`` (the matched pairs).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u

from survey_mass import __version__
from survey_mass.crossmatch.match import MatchSpec, join_pairs, sky_match
from survey_mass.errors import UserError
from survey_mass.validate import plots
from survey_mass.validate.eddington import against_truth_figure
from survey_mass.validate.metrics import BinRow, gaussian_fit, radial_dn_over_n, summarize

#: Mass estimates the report compares, in order; the first present gets the plots.
ESTIMATES = ("logm500", "logm500_xray", "logm500_sz", "logm500_optical")


@dataclass
class InterpretationMap:
    """One cluster's interpretation: its model input and the change an interpretation method makes.

    ``change`` is e.g. a DeepDream step or input gradient x step (same shape as ``image``), so
    dN/N per annulus is the X-ray paper's profile; ``r500_pix`` is R500 in pixels of the image.
    """

    target_id: str
    image: np.ndarray
    change: np.ndarray
    r500_pix: float
    method: str = "input gradients"


@dataclass
class ReportResult:
    html_path: Path
    json_path: Path
    numbers: dict = field(repr=False)


def build_report(
    predictions: pd.DataFrame,
    references: Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    *,
    match_radius: u.Quantity = 1.0 * u.arcmin,
    dz: float | None = None,
    r500_fraction: float | None = None,
    title: str = "survey-mass validation report",
    prediction_name: str = "predictions",
    interpretation: Sequence[InterpretationMap] = (),
) -> ReportResult:
    """Match ``predictions`` to each reference and write the HTML and JSON report in ``out_dir``."""
    predictions = _standard_ids(predictions)
    estimates = [c for c in ESTIMATES if c in predictions]
    if not estimates:
        raise UserError(
            f"{prediction_name} has no mass column to validate (one of {', '.join(ESTIMATES)}); "
            f"it has {list(predictions.columns)}"
        )
    if not references:
        raise UserError("give at least one reference catalog to compare against (--against NAME)")
    spec = MatchSpec(radius=match_radius, dz=dz, mode="nearest", r500_fraction=r500_fraction)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    numbers = {
        "title": title,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "survey_mass_version": __version__,
        "prediction": {
            "name": prediction_name,
            "n": int(len(predictions)),
            **_describe(predictions),
        },
        "match": {
            "mode": "nearest",
            "radius_arcsec": float(match_radius.to_value(u.arcsec)),
            "dz": dz,
            "r500_fraction": r500_fraction,
            "residual": "delta = log10 M_pred - log10 M_ref",
        },
        "references": {},
        "interpretation": [],
    }
    sections = []
    for name, reference in references.items():
        block, section = _compare(predictions, _standard_ids(reference), name, estimates, spec, out)
        numbers["references"][name] = block
        sections.append(section)
    interpretation_html = _interpretation(interpretation, numbers["interpretation"])
    html_path = out / "report.html"
    json_path = out / "report.json"
    html_path.write_text(_page(numbers, sections, interpretation_html))
    json_path.write_text(json.dumps(jsonable(numbers), indent=2))
    return ReportResult(html_path, json_path, numbers)


def _standard_ids(frame: pd.DataFrame) -> pd.DataFrame:
    if "id" not in frame and "target_id" in frame:
        frame = frame.rename(columns={"target_id": "id"})
    return frame


def _describe(frame: pd.DataFrame) -> dict:
    return {
        k: frame.attrs[k]
        for k in ("title", "citation", "mass_relation", "notes")
        if frame.attrs.get(k)
    }


def _z_for_bins(joined: pd.DataFrame) -> np.ndarray:
    z_ref = joined["z_ref"].to_numpy(float) if "z_ref" in joined else np.full(len(joined), np.nan)
    z_pred = (
        joined["z_pred"].to_numpy(float) if "z_pred" in joined else np.full(len(joined), np.nan)
    )
    return np.where(np.isfinite(z_ref), z_ref, z_pred)


def _compare(predictions, reference, name, estimates, spec, out: Path):
    # None: no dz asked; False: asked, but a side has no z (e.g. eRASS1, positions only)
    redshift_test = None if spec.dz is None else ("z" in reference and "z" in predictions)
    if redshift_test is False:
        spec = replace(spec, dz=None)
    pairs = sky_match(predictions, reference, spec)
    joined = join_pairs(predictions, reference, pairs)
    joined.to_csv(out / f"matches_{name}.csv", index=False)
    has_mass = "logm500" in reference and np.isfinite(reference["logm500"].to_numpy(float)).any()
    block = {
        "n_reference": int(len(reference)),
        "n_reference_with_mass": int(np.isfinite(reference["logm500"].to_numpy(float)).sum())
        if has_mass
        else 0,
        "n_matched": int(len(pairs)),
        "n_reference_matched": int(pairs["right"].nunique()),
        "median_sep_arcsec": float(np.median(pairs["sep_arcsec"])) if len(pairs) else float("nan"),
        "redshift_test": redshift_test,
        **_describe(reference),
        "estimates": {},
    }
    images = []
    if has_mass and len(joined):
        z = _z_for_bins(joined)
        sigma_ref = joined["logm500_sigma_ref"] if "logm500_sigma_ref" in joined else None
        for est in estimates:
            sigma = joined[f"{est}_sigma_pred"] if f"{est}_sigma_pred" in joined else None
            upper, own = f"{est}_p97_5_pred", joined.get(f"{est}_half95_pred")  # 95% intervals
            half95 = joined[upper] - joined[f"{est}_pred"] if upper in joined else own
            summary = summarize(
                joined[f"{est}_pred"], joined["logm500_ref"], z, sigma, sigma_ref, half95
            )
            block["estimates"][est] = summary.to_dict()
        images = _figures(joined, estimates[0], name, block["estimates"][estimates[0]])
        images += _per_estimate_figures(joined, estimates, name, block["estimates"])
        images += [against_truth_figure(joined, estimates, z)] if name == "mock_truth" else []
    if len(predictions):
        matched = np.zeros(len(predictions), bool)
        matched[pairs["left"].to_numpy()] = True
        images.append(_sky(predictions, matched, name))
    return block, _section(name, block, images)


def _per_estimate_figures(joined, estimates, name, summaries) -> list[tuple[str, bytes]]:
    """Each instrument's estimate against the reference, residuals against z, and coverage."""
    ref = joined["logm500_ref"].to_numpy(float)
    figures = [
        (
            f"{est} against {name} masses, with the 1:1 line",
            plots.pred_vs_ref(
                ref,
                joined[f"{est}_pred"].to_numpy(float),
                title=f"{est} vs {name}",
                xlabel=f"{name} log10 M500 [Msun]",
                ylabel=f"{est} [log10 Msun]",
            ),
        )
        for est in estimates[1:]
    ]
    residuals = {est: joined[f"{est}_pred"].to_numpy(float) - ref for est in estimates}
    figures.append(
        (
            f"Residuals against {name} as a function of redshift",
            plots.residuals_vs_z(_z_for_bins(joined), residuals, title=f"residuals vs {name}"),
        )
    )
    covered = {e: s["coverage"] for e, s in summaries.items() if s.get("coverage")}
    if covered:
        figures.append(
            (
                f"Coverage of the quoted 68% and 95% intervals against {name}",
                plots.coverage_bars(covered, title=f"interval coverage vs {name}"),
            )
        )
    return figures


def _sky(predictions: pd.DataFrame, matched: np.ndarray, name: str) -> tuple[str, bytes]:
    mass = "logm500" if "logm500" in predictions else next(c for c in ESTIMATES if c in predictions)
    return (
        f"Sky map of the catalog, coloured by {mass}; ringed: matched to {name}",
        plots.sky_map(
            predictions["ra"].to_numpy(float),
            predictions["dec"].to_numpy(float),
            predictions[mass].to_numpy(float),
            matched=matched,
            title=f"catalog on the sky ({matched.sum()} matched to {name})",
        ),
    )


def _figures(joined: pd.DataFrame, est: str, name: str, summary: dict) -> list[tuple[str, bytes]]:
    pred = joined[f"{est}_pred"].to_numpy(float)
    ref = joined["logm500_ref"].to_numpy(float)
    ok = np.isfinite(pred) & np.isfinite(ref)
    sigma = (
        joined[f"{est}_sigma_pred"].to_numpy(float)[ok] if f"{est}_sigma_pred" in joined else None
    )
    delta = pred[ok] - ref[ok]
    fit = gaussian_fit(delta)
    rows = [BinRow(**row) for row in summary["fractional_by_bin"]]
    return [
        (
            f"{est} against {name} masses, with the 1:1 line",
            plots.pred_vs_ref(
                ref[ok],
                pred[ok],
                sigma_pred=sigma,
                title=f"{est} vs {name}",
                xlabel=f"{name} log10 M500 [Msun]",
                ylabel=f"{est} [log10 Msun]",
            ),
        ),
        (
            f"Residual PDF of {est} - {name} with its Gaussian fit",
            plots.residual_histogram(delta, fit, title=f"{est} - {name}"),
        ),
        (
            f"(M_pred - M_ref)/M_pred per redshift bin against {name}",
            plots.bin_bars(rows, title=f"{est} vs {name}: mean +- std per bin"),
        ),
    ]


def _interpretation(maps: Sequence[InterpretationMap], record: list) -> str:
    if not maps:
        return "<p>No interpretation maps were given for this report.</p>"
    parts, profiles, edges = [], {}, None
    for item in maps:
        edges, profile = radial_dn_over_n(item.image, item.change, item.r500_pix)
        profiles[item.target_id] = profile
        record.append(
            {
                "target_id": item.target_id,
                "method": item.method,
                "edges_r500": edges.tolist(),
                "dn_over_n": profile.tolist(),
            }
        )
        png = plots.image_panels(
            [item.image, item.change],
            [f"{item.target_id}: input", item.method],
            cmaps=["magma", "RdBu_r"],
            centred=[False, True],
        )
        parts.append(_img(png, f"{item.target_id}: model input and {item.method}"))
    png = plots.radial_profile(
        edges, profiles, title="dN/N per annulus of the interpretation change"
    )
    parts.append(_img(png, "Radial dN/N profiles, r in units of R500"))
    return "\n".join(parts)


def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    text = html.escape(caption)
    return f'<figure><img src="data:image/png;base64,{data}" alt="{text}"><figcaption>{text}</figcaption></figure>'


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _section(name: str, block: dict, images) -> str:
    e = html.escape
    head = [f'<section id="ref-{e(name)}"><h2>Against {e(name)}</h2>']
    if block.get("title"):
        head.append(
            f"<p>{e(block['title'])} &mdash; {e(block.get('citation', ''))}<br>"
            f"Mass: {e(block.get('mass_relation', ''))}<br>{e(block.get('notes', ''))}</p>"
        )
    head.append(
        f"<p>{block['n_matched']} matches (of {block['n_reference']} reference clusters, "
        f"{block['n_reference_with_mass']} with a mass); median separation "
        f"{_fmt(block['median_sep_arcsec'], 1)} arcsec"
        f"{'; no redshift test (a side has no z)' if block['redshift_test'] is False else ''}.</p>"
    )
    if not block["estimates"]:
        head.append("<p>No masses to compare (the reference has none, or nothing matched).</p>")
    for est, s in block["estimates"].items():
        cov = s["coverage"] or {}
        head.append(
            f"<h3>{e(est)}</h3><table><tr><th>N</th><th>bias [dex]</th><th>median [dex]</th>"
            "<th>Gaussian &mu; [dex]</th><th>Gaussian &sigma; [dex]</th><th>std [dex]</th><th>MAE [dex]</th>"
            "<th>68% coverage</th><th>95% coverage</th></tr>"
            f"<tr><td>{s['n']}</td><td>{_fmt(s['bias_dex'])}</td><td>{_fmt(s['median_dex'])}</td>"
            f"<td>{_fmt(s['gauss_mu_dex'])}</td><td>{_fmt(s['gauss_sigma_dex'])}</td><td>{_fmt(s['std_dex'])}</td>"
            f"<td>{_fmt(s['mae_dex'])}</td><td>{_fmt(cov.get('68'), 2)}</td><td>{_fmt(cov.get('95'), 2)}</td></tr>"
            "</table><table><tr><th>bin</th><th>N</th><th>mean (M_pred-M_ref)/M_pred</th><th>std</th></tr>"
            + "".join(
                f"<tr><td>{e(r['label'])}</td><td>{r['n']}</td><td>{_fmt(r['mean'])}</td><td>{_fmt(r['std'])}</td></tr>"
                for r in s["fractional_by_bin"]
            )
            + "</table>"
        )
    head.extend(_img(png, caption) for caption, png in images)
    head.append("</section>")
    return "\n".join(head)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}figure{display:inline-block;margin:.5em;vertical-align:top}
img{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}code{background:#f3f3f3}
"""


def _page(numbers: dict, sections: list[str], interpretation_html: str) -> str:
    e = html.escape
    pred = numbers["prediction"]
    match = numbers["match"]
    rows = []
    for name, block in numbers["references"].items():
        first = next(iter(block["estimates"].values()), None)
        cov = (first or {}).get("coverage") or {}
        rows.append(
            f'<tr><td><a href="#ref-{e(name)}">{e(name)}</a></td><td>{block["n_matched"]}</td>'
            + "".join(
                f"<td>{_fmt((first or {}).get(k))}</td>"
                for k in ("bias_dex", "gauss_sigma_dex", "std_dex", "mae_dex")
            )
            + f"<td>{_fmt(cov.get('68'), 2)}</td><td>{_fmt(cov.get('95'), 2)}</td></tr>"
        )
    radius = f"{match['radius_arcsec']:.1f} arcsec"
    if match["r500_fraction"]:
        radius = f"{match['r500_fraction']} R500 (else {radius})"
    within = e(radius) + ("" if match["dz"] is None else f", |&Delta;z| &le; {match['dz']}")
    cited = f" &mdash; {e(pred['citation'])}" if pred.get("citation") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(numbers["title"])}</title><style>{_CSS}</style></head>
<body><h1>{e(numbers["title"])}</h1>
<p>Predictions: <b>{e(pred["name"])}</b> ({pred["n"]} clusters){cited}.
Matched to each reference by nearest neighbour within {within}.
Created {e(numbers["created_utc"])} by survey-mass {e(numbers["survey_mass_version"])}; the numbers are also in
<code>report.json</code>, the pairs in <code>matches_&lt;reference&gt;.csv</code>.</p>
<h2>Summary</h2>
<table><tr><th>reference</th><th>matched</th><th>bias [dex]</th><th>Gaussian &sigma; [dex]</th><th>std [dex]</th>
<th>MAE [dex]</th><th>68% cov.</th><th>95% cov.</th></tr>{"".join(rows)}</table>
<p>&delta; = log10 M_pred &minus; log10 M_ref. Bias: mean &delta;; Gaussian &sigma;: width of a Gaussian fitted to the
histogram of &delta;; coverage: fraction of clusters with |&delta;| within 1&sigma; (68%) and 1.96&sigma; (95%) of the
quoted errors (prediction and reference in quadrature). Redshift bins: lo &lt; z &le; hi; &ldquo;log M &gt; 14.7&rdquo;
selects on the reference mass.</p>
{"".join(sections)}
<section id="interpretation"><h2>Interpretation maps</h2>{interpretation_html}</section>
</body></html>
"""


def jsonable(value):
    """NaN/inf -> null and numpy scalars -> Python, so the JSON is standard."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
