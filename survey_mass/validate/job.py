"""Report jobs: several (catalog against references) reports from one TOML file, plus an index.

A report's "catalog" is either our mass catalog (a folder written by ``survey-mass run``) or an
external catalog by name (``catalogs/NAME.toml``), so the same machinery validates real catalogs
against each other (see jobs/real_catalogs_report.toml).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import tomllib
from astropy import units as u
from pydantic import Field, ValidationError

from survey_mass.catalog.paths import CATALOG, CatalogLayout
from survey_mass.catalog.reader import read_mass_catalog
from survey_mass.errors import JobSpecError
from survey_mass.references import read_catalog
from survey_mass.references.masses import at_reference_h, require_same_definition
from survey_mass.spec.base import StrictModel
from survey_mass.spec.job import format_validation_error
from survey_mass.validate.report import ReportResult, build_report, jsonable
from survey_mass.validate.weak_lensing import WeakLensingSpec, build_weak_lensing_report


class Comparison(StrictModel):
    catalog: str = Field(description="mass catalog folder/URL or external catalog name")
    against: list[str] = Field(min_length=1, description="reference catalog names")
    radius_arcsec: float = Field(60.0, gt=0, description="match radius [arcsec]")
    dz: float | None = Field(None, ge=0, description="max |z_ref - z| (both need z)")
    r500_fraction: float | None = Field(None, gt=0, description="radius as a fraction of R500")
    title: str | None = None


class ReportJob(StrictModel):
    title: str = "survey-mass validation reports"
    out: str = Field(description="output folder: one sub-folder per comparison, index.html on top")
    network: bool = Field(False, description="allow fetching catalogs without a local copy")
    paths: dict[str, str] = Field(default_factory=dict, description="catalog name -> local file")
    comparison: list[Comparison] = Field(min_length=1)
    weak_lensing: WeakLensingSpec | None = Field(
        None, description="catalogs against weak-lensing masses, real and mock (weak_lensing.py)"
    )


def load_report_job(path: str | Path) -> ReportJob:
    """Read a report job TOML; errors name the key and the fix."""
    path = Path(path)
    if not path.is_file():
        raise JobSpecError(f"{path}: no such report job file; see jobs/real_catalogs_report.toml")
    try:
        return ReportJob.model_validate(tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as err:
        raise JobSpecError(f"{path}: not valid TOML ({err})") from err
    except ValidationError as err:
        raise JobSpecError(format_validation_error(err, str(path))) from err


def is_mass_catalog(source: str) -> bool:
    """True for a folder (or URL) holding a mass catalog's partitions."""
    return CatalogLayout(source).has_table(CATALOG)


def is_catalog_folder(source: str) -> bool:
    return "://" in source or Path(source).is_dir()


def mock_run_kwargs(source: str) -> dict:
    """``spec`` and ``footprint`` of a mock run (from its provenance.json), for mock_* references.

    Empty for external catalogs and real-data runs: then mock references cannot be drawn.
    """
    if not is_catalog_folder(source):
        return {}
    layout = CatalogLayout(source)
    if not layout.fs.exists(layout.provenance):
        return {}
    job = json.loads(layout.fs.cat_file(layout.provenance)).get("job", {})
    footprint = job.get("targets", {}).get("footprint")
    if job.get("source", {}).get("kind") != "mock" or footprint is None:
        return {}
    return {"spec": job["source"].get("mock", {}), "footprint": footprint}


def load_table(
    source: str,
    paths: Mapping[str, str] | None = None,
    network: bool = False,
    mock_kwargs: dict | None = None,
) -> pd.DataFrame:
    """Our mass catalog at ``source``, or the external catalog named ``source``.

    ``mock_kwargs`` (see :func:`mock_run_kwargs`) are passed to the simulator for mock_* catalogs.
    """
    if is_catalog_folder(source):
        if not is_mass_catalog(source):
            raise JobSpecError(
                f"{source} is a folder but not a mass catalog (no {CatalogLayout(source).describe()})"
            )
        frame = read_mass_catalog(source).rename(columns={"target_id": "id"})
        frame.attrs.update(title=f"survey-mass catalog {source}")
        return frame
    return read_catalog(source, paths=paths, network=network, mock_kwargs=mock_kwargs)


def run_report_job(job: ReportJob) -> list[ReportResult]:
    """Every comparison's report under ``job.out``, and ``index.html`` + ``summary.json`` there."""
    out = Path(job.out)
    cache: dict[str, pd.DataFrame] = {}

    def table(name: str, mock_kwargs: dict | None = None) -> pd.DataFrame:
        key = json.dumps([name, mock_kwargs], sort_keys=True)
        if key not in cache:
            cache[key] = load_table(name, job.paths, job.network, mock_kwargs)
        return cache[key]

    results, summary = [], []
    for comp in job.comparison:
        folder = f"{Path(comp.catalog).name}_vs_{'_'.join(comp.against)}"
        catalog = at_reference_h(table(comp.catalog))  # masses compared at h = 0.7
        against = {n: at_reference_h(table(n, mock_run_kwargs(comp.catalog))) for n in comp.against}
        for name, reference in against.items():
            require_same_definition(catalog, reference, comp.catalog, name)
        result = build_report(
            catalog,
            against,
            out / folder,
            match_radius=comp.radius_arcsec * u.arcsec,
            dz=comp.dz,
            r500_fraction=comp.r500_fraction,
            title=comp.title or f"{comp.catalog} against {', '.join(comp.against)}",
            prediction_name=comp.catalog,
        )
        results.append(result)
        for ref, block in result.numbers["references"].items():
            joint = block["estimates"].get("logm500", {})
            bins = {row["label"]: row for row in joint.get("fractional_by_bin", [])}
            summary.append(
                {
                    "report": f"{folder}/report.html",
                    "catalog": comp.catalog,
                    "reference": ref,
                    "n_matched": block["n_matched"],
                    "n_with_masses": joint.get("n", 0),
                    "bias_dex": joint.get("bias_dex"),
                    "gauss_sigma_dex": joint.get("gauss_sigma_dex"),
                    "frac_mean_all": bins.get("all", {}).get("mean"),
                    "frac_std_all": bins.get("all", {}).get("std"),
                }
            )
    top = {"title": job.title, "comparisons": summary}
    if job.weak_lensing is not None:
        wl = build_weak_lensing_report(
            job.weak_lensing, table, mock_run_kwargs, out / job.weak_lensing.out
        )
        results.append(wl)
        top["weak_lensing"] = _wl_summary(job.weak_lensing.out, wl)
    (out / "summary.json").write_text(json.dumps(jsonable(top), indent=2))
    (out / "index.html").write_text(_index(job.title, summary, top.get("weak_lensing")))
    return results


def _wl_summary(folder: str, wl: ReportResult) -> dict:
    return {
        "report": f"{folder}/weak_lensing.html",
        "numbers": f"{folder}/weak_lensing.json",
        "side_by_side": wl.numbers["side_by_side"],
    }


def _index(title: str, rows: list[dict], weak_lensing: dict | None = None) -> str:
    e = html.escape

    def fmt(value):
        return "&ndash;" if value is None or value != value else f"{value:.3f}"

    body = "".join(
        f'<tr><td><a href="{e(r["report"])}">{e(r["catalog"])}</a></td><td>{e(r["reference"])}</td>'
        f"<td>{r['n_matched']}</td><td>{r['n_with_masses']}</td><td>{fmt(r['bias_dex'])}</td>"
        f"<td>{fmt(r['gauss_sigma_dex'])}</td><td>{fmt(r['frac_mean_all'])} &plusmn; {fmt(r['frac_std_all'])}</td></tr>"
        for r in rows
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:.3em .6em}"
        f"table{{border-collapse:collapse}}</style></head><body><h1>{e(title)}</h1>"
        "<table><tr><th>catalog</th><th>reference</th><th>matched</th><th>with masses</th><th>bias [dex]</th>"
        "<th>Gaussian &sigma; [dex]</th><th>(M - M_ref)/M, all z</th></tr>"
        f"{body}</table><p>bias = mean of log10 M_catalog &minus; log10 M_reference.</p>"
        + (
            f'<p><a href="{e(weak_lensing["report"])}">Masses against weak-lensing masses</a> '
            "(real sky beside the mock survey)</p>"
            if weak_lensing
            else ""
        )
        + "</body></html>"
    )
