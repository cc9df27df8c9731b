"""The job hash: rows are reused only by a run that writes the same columns."""

from __future__ import annotations

from survey_mass.runner import provenance
from survey_mass.runner.versioning import describe_changes
from survey_mass.spec.job import load_job_spec
from survey_mass.zoo.registry import resolve_models


def test_a_catalog_written_with_other_columns_is_another_job(monkeypatch):
    spec = load_job_spec("jobs/demo.toml")
    models = resolve_models(spec.models, spec.instruments)
    now = provenance.job_hash(spec, models)
    assert ("sz_snr" in provenance.columns(spec)) == ("sz" in spec.instruments)
    older = [c for c in provenance.columns(spec) if c != "sz_snr"] + ["retired_column"]
    monkeypatch.setattr(provenance, "columns", lambda spec: older)
    assert provenance.job_hash(spec, models) != now  # its rows are not reused


def test_the_refusal_names_the_new_columns():
    old = {
        "columns": ["target_id", "logm500_sz"],
        "spec": {},
        "models": {},
        "inputs": {"targets": {}},
    }
    new = {**old, "columns": ["target_id", "logm500_sz", "sz_snr"]}
    (change,) = describe_changes(old, new)
    assert "columns changed" in change and "sz_snr" in change
