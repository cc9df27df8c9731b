"""Finalize reads the run's done markers from disk one at a time and refuses a missing one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from survey_mass.catalog.paths import CatalogLayout
from survey_mass.catalog.writer import CatalogWriteError, finalize, read_markers

from support.mass_catalog_factory import write_mass_catalog


def _rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame(
        {
            "target_id": [f"c{i}" for i in range(n)],
            "ra": rng.uniform(0, 360, n),
            "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
            "z": rng.uniform(0.05, 0.5, n),
            "logm500": rng.uniform(14, 15, n),
        }
    )


def test_the_manifest_lists_every_markers_files_and_the_totals(tmp_path):
    layout = CatalogLayout(write_mass_catalog(tmp_path / "cat", _rows(200), order=1))
    markers = read_markers(layout)
    manifest = json.loads(layout.fs.cat_file(layout.manifest))
    assert manifest["shards"] == {str(p): markers[p]["files"] for p in sorted(markers)}
    assert manifest["rows"] == 200 == sum(m["rows"] for m in markers.values())
    assert manifest["quarantined"] == 0 and manifest["order"] == 1


def test_a_marker_gone_before_finalize_is_refused_and_no_metadata_is_written(tmp_path):
    layout = CatalogLayout(write_mass_catalog(tmp_path / "cat", _rows(200), order=1))
    shards = set(read_markers(layout))
    layout.fs.rm(layout.metadata)
    gone = min(shards)
    layout.fs.rm(layout.done_marker(gone))
    with pytest.raises(CatalogWriteError, match=rf"missing \[{gone}\]"):
        finalize(layout, 1, shards, ["sz"], {"order": 1})
    # the same count with another shard's marker in its place is refused too
    stray = max(shards) + 1
    marker = {"pixel": stray, "rows": 0, "quarantined": 0, "files": []}
    layout.fs.pipe_file(layout.done_marker(stray), json.dumps(marker).encode())
    with pytest.raises(CatalogWriteError, match=rf"unexpected \[{stray}\]"):
        finalize(layout, 1, shards, ["sz"], {"order": 1})
    assert not layout.fs.exists(layout.metadata)  # readers see an unfinished catalog


def test_files_in_the_marker_folder_that_no_run_writes_are_no_markers(tmp_path):
    layout = CatalogLayout(write_mass_catalog(tmp_path / "cat", _rows(50), order=1))
    before = read_markers(layout)
    folder = layout.done_marker(0).rsplit("/", 1)[0]
    layout.fs.pipe_file(f"{folder}/._Npix=5.json", b"\x00\x05")
    layout.fs.pipe_file(f"{folder}/Npix=7 (copy).json", b"{}")
    assert read_markers(layout) == before
