"""Scheduled jobs over growing inputs, on a real Dask cluster: three nights of one nightly job.

Night 1 weighs a 50-row target catalog; night 2 appends 10 rows and revises one redshift (a plain
re-run refuses, saying what changed; ``--update``, killed once and resumed, writes v2 weighing
only those 11 and carrying the untouched shards over byte for byte); night 3 removes 5 rows and changes the X-ray ensemble (v3: every row re-weighed,
the removed rows gone). After each night every current input target is in exactly one of the
catalog and the quarantine, and older versions stay readable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survey_mass.catalog.diff import diff_catalogs
from survey_mass.catalog.paths import current_version, resolve
from survey_mass.catalog.query import query
from survey_mass.catalog.reader import read_mass_catalog
from survey_mass.catalog.versions import list_versions
from survey_mass.mock.universe import base_pixel_clusters
from survey_mass.pixel_math import radec_to_pixels
from survey_mass.runner.job import run_job
from survey_mass.runner.shard import process_shard
from survey_mass.runner.versioning import InputsChangedError
from survey_mass.spec.job import parse_job_spec
from survey_mass.spec.universe import UniverseSpec
from survey_mass.zoo.registry import SHIPPED_ZOO

pytestmark = pytest.mark.timeout(600)

JOB = """
name = "nightly"
batch_size = 16
[targets]
catalog = "{catalog}"
footprint = {{ kind = "cone", ra = {ra}, dec = {dec}, radius_deg = 3.0 }}
shard_order = 7
[source]
mock = {{ seed = 11 }}
[models]
xray = "{xray}"
[output]
url = "{url}"
"""


@pytest.fixture(scope="module")
def targets() -> pd.DataFrame:
    """70 mock clusters over a few square degrees (a few in each of many order-7 shards)."""
    spec, frames, pixel = UniverseSpec(seed=11), [], 120000
    while sum(len(f) for f in frames) < 70:
        frames.append(base_pixel_clusters(spec, pixel))
        pixel += 1
    rows = pd.concat(frames, ignore_index=True)
    return rows.head(70)[["target_id", "ra", "dec", "z"]].rename(columns={"target_id": "id"})


def four_fold_xray(folder: Path) -> Path:
    """The shipped X-ray ensemble without its last fold: another model, as a retrain would be."""
    copy = folder / "xray-4fold"
    shutil.copytree(SHIPPED_ZOO / "xray-v1", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    dropped = manifest["members"].pop()
    (copy / dropped["file"]).unlink()
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return copy


def job_text(tmp_path: Path, targets, rows: pd.DataFrame, xray="xray-v1", out="out") -> str:
    """Tonight's job: ``rows`` written as its target catalog."""
    catalog = tmp_path / "targets.csv"
    rows.to_csv(catalog, index=False)
    ra, dec = float(targets["ra"].mean()), float(targets["dec"].mean())
    return JOB.format(catalog=catalog, ra=ra, dec=dec, xray=xray, url=tmp_path / out)


def night(tmp_path: Path, targets, rows: pd.DataFrame, xray="xray-v1", out="out"):
    return parse_job_spec(job_text(tmp_path, targets, rows, xray, out))


def accounted(url: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The catalog, after checking every input target is in exactly one of the two tables."""
    catalog = read_mass_catalog(str(url))
    quarantine = query(str(url), "SELECT target_id FROM quarantine")
    ids = list(catalog["target_id"]) + list(quarantine["target_id"])
    assert sorted(ids) == sorted(rows["id"]), "a target is missing, duplicated or left over"
    return catalog


def files_of(url: Path, version: str) -> dict[int, dict]:
    markers = (url / version / "_done").glob("Npix=*.json")
    return {m["pixel"]: m for m in (json.loads(p.read_text()) for p in markers)}


def test_three_nights_of_a_growing_catalog(tmp_path, targets, dask_client):
    out = tmp_path / "out"
    # night 1
    first = run_job(night(tmp_path, targets, targets.head(50)), client=dask_client, progress=False)
    assert (first.version, first.parent, first.weighed) == ("v1", None, 50)
    accounted(out, targets.head(50))

    # night 2: ten targets appended, and one redshift revised
    tonight = targets.head(60).copy()
    tonight.loc[3, "z"] += 0.01
    revised = int(
        radec_to_pixels(tonight["ra"].to_numpy()[[3]], tonight["dec"].to_numpy()[[3]], 7)[0]
    )
    spec = night(tmp_path, targets, tonight)
    with pytest.raises(InputsChangedError, match=r"50 -> 60 rows.*--update"):
        run_job(spec, client=dask_client, progress=False)
    assert current_version(str(out)) == "v1"  # the refusal wrote nothing

    # ... an update killed after planning and one shard: v1 stays current and readable
    plans = []

    def stop_after_plan(plan):
        plans.append(plan)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(spec, client=dask_client, progress=False, confirm=stop_after_plan, update=True)
    plan = plans[0]
    changed = [s for s in plan.todo if (p := plan.parent_of(s)) is None or not p.carry]
    process_shard(
        spec,
        changed[0],
        plan.models,
        plan.job_hash,
        "killed",
        plan.layout.url,
        plan.parent_of(changed[0]),
    )
    assert resolve(str(out)).endswith("/v1") and len(accounted(out, targets.head(50))) == 50

    second = run_job(spec, client=dask_client, progress=False, update=True)  # resumes v2
    assert (second.version, second.parent) == ("v2", "v1")
    assert second.shards_run == len(plan.todo) - 1
    catalog = accounted(out, tonight)
    new_ids = set(targets["id"].iloc[50:60])
    v1, v2 = files_of(out, "v1"), files_of(out, "v2")
    touched = {p for p, m in v2.items() if not m["carried"]}
    new_pixels = {p for p, m in v2.items() if m["rows"] > v1.get(p, {"rows": 0})["rows"]}
    assert touched == new_pixels | {revised} and len(touched) < len(v2)
    assert sum(m["weighed"] for m in v2.values()) == len(new_ids) + 1  # only new and revised
    for pixel in set(v2) - touched:  # untouched partitions: the very bytes of v1
        for record in v2[pixel]["files"]:
            assert (out / "v2" / record["path"]).read_bytes() == (
                out / "v1" / record["path"]
            ).read_bytes()
    # the update ends with the catalog a fresh run over night 2's targets writes
    fresh = run_job(
        night(tmp_path, targets, tonight, out="fresh"), client=dask_client, progress=False
    )
    assert fresh.weighed == 60
    mine = catalog.sort_values("target_id").reset_index(drop=True)
    theirs = read_mass_catalog(str(tmp_path / "fresh")).sort_values("target_id")
    np.testing.assert_allclose(mine["logm500"], theirs["logm500"].to_numpy(), atol=1e-5)
    assert len(read_mass_catalog(str(out / "v1"))) == 50  # the old version stays readable

    # night 3: five targets removed and the X-ray model retrained
    rows = tonight.drop(index=tonight.index[[0, 7, 21, 33, 52]])
    spec = night(tmp_path, targets, rows, xray=four_fold_xray(tmp_path))
    with pytest.raises(InputsChangedError, match=r"models\.xray changed"):
        run_job(spec, client=dask_client, progress=False)
    third = run_job(spec, client=dask_client, progress=False, update=True)
    assert (third.version, third.parent, third.carried) == ("v3", "v2", 0)
    assert third.weighed == 55  # another model: nothing can be reused
    accounted(out, rows)
    numbers, shifts = diff_catalogs(str(out / "v2"), str(out / "v3"))
    assert (numbers["added"], numbers["removed"], numbers["common"]) == (0, 5, 55)
    assert numbers["shifts"]["logm500_xray"]["changed"] == 55
    assert [v.name for v in list_versions(str(out))] == ["v1", "v2", "v3"]

    # a re-run of night 3 changes nothing
    again = run_job(spec, client=dask_client, progress=False, update=True)
    assert again.already_complete and again.version == "v3"


def test_the_cli_refuses_a_changed_job_and_updates_it_when_asked(
    tmp_path, targets, dask_client, capsys
):
    from survey_mass.cli import main

    address = dask_client.scheduler.address
    job = tmp_path / "job.toml"

    def cli(rows, *flags) -> tuple[int, dict]:
        job.write_text(job_text(tmp_path, targets, rows))
        code = main(["run", str(job), "--cluster", address, "--json", *flags])
        return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert cli(targets.head(5))[1]["version"] == "v1"
    code, refused = cli(targets.head(6))
    assert (code, refused["status"]) == (2, "error") and "--update" in refused["error"]
    code, updated = cli(targets.head(6), "--update")
    assert code == 0 and (updated["version"], updated["parent"], updated["weighed"]) == (
        "v2",
        "v1",
        1,
    )
