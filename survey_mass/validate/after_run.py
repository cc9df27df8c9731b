"""The validation a job asks for in its ``[report]`` table, and the summary a person reads.

Per instrument and for the joint mass: rows weighed, median quoted sigma, and against the first
reference (the mock truth in the demo) bias, scatter and the 68% / 95% coverage of the intervals.
"""

from __future__ import annotations

import numpy as np

from survey_mass.catalog.reader import read_mass_catalog
from survey_mass.constants import INSTRUMENTS
from survey_mass.spec.job import JobSpec
from survey_mass.validate.job import load_table, mock_run_kwargs
from survey_mass.validate.report import ReportResult, build_report


def report_after_run(spec: JobSpec) -> ReportResult:
    url, names = spec.output.url, spec.report.against
    out = spec.report.out or f"{url.rstrip('/')}_report"
    return build_report(
        load_table(url),
        {name: load_table(name, mock_kwargs=mock_run_kwargs(url)) for name in names},
        out,
        title=f"{spec.name} against {', '.join(names)}",
        prediction_name=spec.name,
    )


def _fmt(value: float, pattern: str) -> str:
    return "-" if value is None or not np.isfinite(value) else pattern.format(value)


def summary_table(spec: JobSpec, result: ReportResult) -> str:
    """One row per instrument and the joint mass, against the report's first reference."""
    catalog = read_mass_catalog(spec.output.url)
    reference = spec.report.against[0]
    estimates = result.numbers["references"][reference]["estimates"]
    columns = [f"logm500_{i}" for i in INSTRUMENTS if i in spec.instruments] + ["logm500"]
    lines = [
        f"masses against {reference} [dex]:",
        f"  {'estimate':<18}{'rows':>6}{'median sigma':>14}{'bias':>9}{'scatter':>9}"
        f"{'68%':>8}{'95%':>8}",
    ]
    for column in columns:
        weighed = catalog[column].notna()
        sigma = catalog.loc[weighed, f"{column}_sigma"].median() if weighed.any() else np.nan
        stats = estimates.get(column, {})
        cover = stats.get("coverage") or {}
        lines.append(
            f"  {column:<18}{int(weighed.sum()):>6}{_fmt(sigma, '{:.3f}'):>14}"
            f"{_fmt(stats.get('bias_dex'), '{:+.3f}'):>9}{_fmt(stats.get('std_dex'), '{:.3f}'):>9}"
            f"{_fmt(100 * cover['68'] if cover else None, '{:.1f}%'):>8}"
            f"{_fmt(100 * cover['95'] if cover else None, '{:.1f}%'):>8}"
        )
    return "\n".join(lines)
