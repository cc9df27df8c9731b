"""Warm workers keep models loaded across jobs, and load an entry again once it was retrained."""

from __future__ import annotations

import shutil

import pandas as pd

from survey_mass.catalog.reader import read_mass_catalog
from survey_mass.runner.job import run_job
from survey_mass.spec.job import parse_job_spec
from survey_mass.zoo.registry import SHIPPED_ZOO

JOB = """
name = "warm-{name}"
instruments = ["xray"]
batch_size = 16
[targets]
footprint = {{ kind = "cone", ra = 33.0, dec = 12.0, radius_deg = 0.6 }}
[source]
mock = {{ seed = 11 }}
[models]
xray = "{entry}"
calibrated = false
[output]
url = "{url}"
"""


def _run(client, tmp_path, name: str, entry) -> pd.DataFrame:
    spec = parse_job_spec(JOB.format(name=name, entry=entry, url=tmp_path / name))
    run_job(spec, client=client, progress=False)
    return read_mass_catalog(str(tmp_path / name), ["target_id", "logm500_xray"]).set_index(
        "target_id"
    )


def test_an_entry_retrained_in_place_is_reloaded_by_warm_workers(dask_client, tmp_path):
    entry = tmp_path / "zoo" / "xray-site"
    shutil.copytree(SHIPPED_ZOO / "xray-v1", entry)
    before = _run(dask_client, tmp_path, "before", entry)  # every worker now holds xray-v1
    shutil.rmtree(entry)
    shutil.copytree(SHIPPED_ZOO / "xray-v2", entry)  # retrained: the same folder, new members
    after = _run(dask_client, tmp_path, "after", entry)
    reference = _run(dask_client, tmp_path, "reference", SHIPPED_ZOO / "xray-v2")
    assert len(before) > 5 and before.index.equals(after.index)
    pd.testing.assert_series_equal(after["logm500_xray"], reference["logm500_xray"])
    assert (after["logm500_xray"] - before["logm500_xray"]).abs().max() > 1e-3
