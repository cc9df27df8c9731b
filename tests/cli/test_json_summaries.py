"""Machine-readable summaries for schedulers: one JSON object on stdout, the exit status in it."""

from __future__ import annotations

import json

from conftest import MOCK_JOB

from survey_mass.cli import main


def test_run_and_verify_print_one_json_object(mock_catalog, tmp_path, capsys):
    _, root, summary = mock_catalog
    job = tmp_path / "job.toml"
    job.write_text(MOCK_JOB.format(url=root))
    assert main(["run", str(job), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "already_complete" and out["exit"] == 0
    assert out["rows"] == summary.rows and out["catalog"] == str(root)
    assert main(["verify", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["rows"] == summary.rows and out["problems"] == []


def test_a_failed_run_prints_its_error_as_json_and_exits_2(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text(
        MOCK_JOB.format(url=tmp_path / "out").replace(
            'name = "pipeline-test"', 'name = "x"\nconfirm_above_shards = 1'
        )
    )
    assert main(["run", str(job), "--json"]) == 2
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["status"] == "error" and out["exit"] == 2 and "--yes" in out["error"]
    assert "--yes" in captured.err


def test_report_prints_one_json_object_and_plots_every_instrument(mock_catalog, tmp_path, capsys):
    _, root, summary = mock_catalog
    out = tmp_path / "report"
    assert main(["report", str(root), "--against", "mock_truth", "--out", str(out), "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    truth = numbers["references"]["mock_truth"]
    assert truth["n_matched"] == summary.rows and numbers["exit"] == 0
    assert set(truth["estimates"]) == {"logm500", "logm500_xray"}
    html = (out / "report.html").read_text()
    for caption in (
        "logm500_xray against mock_truth masses",
        "Residuals against mock_truth as a function of redshift",
        "Coverage of the quoted 68% and 95% intervals",
        "Sky map of the catalog",
    ):
        assert caption in html
