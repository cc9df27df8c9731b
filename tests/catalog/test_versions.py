"""Catalog versions of one output: the pointer readers follow, pruning, and the unversioned past."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from survey_mass.catalog.diff import diff_catalogs, diff_text, write_diff_report
from survey_mass.catalog.paths import CatalogLayout, current_version, resolve
from survey_mass.catalog.reader import read_mass_catalog
from survey_mass.catalog.versions import commit_version, list_versions, prune, refuse_unversioned
from survey_mass.cli import main
from survey_mass.errors import UserError

from support.mass_catalog_factory import write_mass_catalog


def rows(n: int, logm: float, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "target_id": [f"c{i}" for i in range(start, start + n)],
            "ra": [150.0 + 0.1 * i for i in range(start, start + n)],
            "dec": [2.0] * n,
            "z": [0.2] * n,
            "logm500": [logm] * n,
            "logm500_sigma": [0.1] * n,
        }
    )


@pytest.fixture
def output(tmp_path):
    """OUT with v1 (c0-c9, 14.0) and v2 (c2-c11, 14.1) and, after commit, v2 current."""
    out = tmp_path / "out"
    for name, frame in (("v1", rows(10, 14.0)), ("v2", rows(10, 14.1, start=2))):
        write_mass_catalog(out / name, frame, order=2, job={"name": "toy"})
        (out / name / "_identity.json").write_text(json.dumps({"parent": None}))
    return out


def test_readers_follow_the_pointer_and_see_one_version_whole(output):
    assert current_version(str(output)) is None  # nothing committed yet: not a catalog
    commit_version(CatalogLayout(str(output / "v1"), output=str(output)), "r1")
    assert resolve(str(output)).endswith("/v1") and len(read_mass_catalog(str(output))) == 10
    commit_version(CatalogLayout(str(output / "v2"), output=str(output)), "r2")
    assert resolve(str(output)).endswith("/v2")
    assert read_mass_catalog(str(output))["target_id"].min() == "c10"  # string order: v2's rows
    assert len(read_mass_catalog(str(output / "v1"))) == 10  # an old version stays readable
    # the lease guards the whole output, whichever version a layout resolved to
    assert CatalogLayout(str(output)).lease == f"{output}/_lease.json"
    import hats

    assert hats.read_hats(output).main_catalog.catalog_info.total_rows == 10


def test_diff_counts_added_removed_and_shifted_rows(output, tmp_path):
    numbers, shifts = diff_catalogs(str(output / "v1"), str(output / "v2"))
    assert (numbers["added"], numbers["removed"], numbers["common"]) == (2, 2, 8)
    assert numbers["shifts"]["logm500"]["changed"] == 8
    assert numbers["shifts"]["logm500"]["median_dex"] == pytest.approx(0.1)
    assert "+2 added, -2 removed" in diff_text(numbers)
    page = write_diff_report(numbers, shifts, tmp_path / "diff")
    assert "shift_logm500.png" in page.read_text() and (tmp_path / "diff" / "diff.json").exists()


def test_prune_keeps_the_current_and_newest_versions(output, tmp_path):
    commit_version(CatalogLayout(str(output / "v1"), output=str(output)), "r1")
    write_mass_catalog(output / "v3", rows(3, 14.2), order=2, job={"name": "toy"})
    (output / "v4").mkdir()  # an unfinished version: the newest is kept for its run to resume
    with pytest.raises(UserError, match="at least 1"):
        prune(str(output), 0)
    assert prune(str(output), 2) == ["v2"]  # v1 current, v3 newest other, v4 unfinished
    assert [v.name for v in list_versions(str(output))] == ["v1", "v3", "v4"]
    assert main(["versions", str(output)]) == 0


def test_an_unversioned_output_is_refused_with_the_fix(tmp_path):
    write_mass_catalog(tmp_path / "old", rows(3, 14.0), order=2)
    with pytest.raises(UserError, match="before catalog versions.*new output.url"):
        refuse_unversioned(str(tmp_path / "old"))
    assert len(read_mass_catalog(str(tmp_path / "old"))) == 3  # still readable as it was
