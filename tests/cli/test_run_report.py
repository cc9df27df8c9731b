"""A job's [report] table: after the run, the per-instrument table against the mock truth, the
report's path and the commands to try next (what the demo ends with)."""

from __future__ import annotations

import json

from survey_mass.cli.run import validation
from survey_mass.spec.job import ReportSpec


def test_a_run_with_a_report_table_prints_the_masses_against_the_truth(mock_catalog, tmp_path):
    spec, root, summary = mock_catalog
    spec = spec.model_copy(
        update={"report": ReportSpec(against=["mock_truth"], out=str(tmp_path / "report"))}
    )
    text = validation(spec)
    lines = text.splitlines()
    assert lines[0] == "masses against mock_truth [dex]:"
    xray = next(line.split() for line in lines if line.strip().startswith("logm500_xray"))
    joint = next(line.split() for line in lines if line.strip().startswith("logm500 "))
    assert int(xray[1]) == int(joint[1]) == summary.rows
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())
    truth = numbers["references"]["mock_truth"]["estimates"]["logm500"]
    assert joint[3] == f"{truth['bias_dex']:+.3f}" and joint[4] == f"{truth['std_dex']:.3f}"
    assert f"{100 * truth['coverage']['68']:.1f}%" == joint[5]
    assert f"report: {tmp_path / 'report' / 'report.html'}" in text
    assert (tmp_path / "report" / "report.html").exists()
    assert f"survey-mass verify {root} --deep" in text
