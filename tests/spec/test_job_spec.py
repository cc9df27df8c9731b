"""Job specs: valid ones parse; bad ones fail with the key and the fix named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey_mass.errors import JobSpecError
from survey_mass.spec.job import load_job_spec, parse_job_spec

REPO = Path(__file__).resolve().parents[2]
MINIMAL = """
name = "t"
[targets]
footprint = { kind = "cone", ra = 10.0, dec = 0.0, radius_deg = 1.0 }
[output]
url = "out/t"
"""


def test_shipped_job_specs_are_valid():
    for path in (REPO / "jobs").glob("*.toml"):
        if "[targets]" in path.read_text():  # run specs; training and report specs differ
            load_job_spec(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.replace('name = "t"', 'name = "t"\ninstrument = ["xray"]'),
            "instrument: unknown key",
        ),
        (
            lambda s: s.replace('name = "t"', 'name = "t"\ninstruments = ["xrya"]'),
            "unknown instrument",
        ),
        (
            lambda s: s.replace("radius_deg = 1.0", "radius_deg = -1.0"),
            "targets.footprint.cone.radius_deg",
        ),
        (
            lambda s: s.replace('url = "out/t"', 'url = "ftp://host/x"'),
            "protocol 'ftp' is not allowed",
        ),
        (lambda s: s.replace('[output]\nurl = "out/t"', ""), "output: required key is missing"),
        (lambda s: s.replace("footprint = {", "footprint = ["), "not valid TOML"),
        (
            lambda s: s.replace('name = "t"', 'name = "t"\n[cluster]\nkind = "address"'),
            "cluster.address",
        ),
        (
            lambda s: s.replace(
                '[targets]\nfootprint = { kind = "cone", ra = 10.0, dec = 0.0, radius_deg = 1.0 }',
                '[targets]\ncatalog = "x.csv"',
            ),
            "give targets.footprint",
        ),
        (lambda s: s.replace('url = "out/t"', 'url = ""'), "output.url: is empty"),
        (lambda s: s.replace('url = "out/t"', 'url = "memory://x/t"'), "workers write shards"),
        (
            lambda s: s.replace(
                'footprint = { kind = "cone", ra = 10.0, dec = 0.0, radius_deg = 1.0 }',
                'footprint = { kind = "box", ra_min = 150.0, ra_max = 150.0, dec_min = 1.0,'
                " dec_max = 2.0 }",
            ),
            "box of no width",
        ),
        (
            lambda s: s + "[source]\nmock = { seed = 1, z_min = 0.8, z_max = 0.2 }\n",
            "source.mock.z_min (0.8) must be below z_max (0.2)",
        ),
        (
            lambda s: s + "[source.mock]\nlog10_m500_min = 14.9\nlog10_m500_max = 13.6\n",
            "log10_m500_min (14.9) must be below log10_m500_max",
        ),
    ],
)
def test_bad_job_specs_name_the_key_and_the_fix(edit, message):
    with pytest.raises(JobSpecError) as err:
        parse_job_spec(edit(MINIMAL), "job.toml")
    assert message in str(err.value)
    assert "job.toml" in str(err.value)


def test_missing_job_file_says_where_examples_are(tmp_path):
    with pytest.raises(JobSpecError, match="see jobs/"):
        load_job_spec(tmp_path / "nope.toml")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_either_parses_or_fails_with_a_job_spec_error(text):
    try:
        parse_job_spec(text, "fuzz.toml")
    except JobSpecError as err:
        assert str(err).startswith("fuzz.toml")
