"""A catalog never lies: damaged catalogs are refused by every reader and repaired by a re-run,
one run writes an output at a time, and every mistake a user can fix is one line, exit 2.

Real files, a real Dask cluster (the session's LocalCluster), the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from survey_mass.catalog.integrity import verify
from survey_mass.catalog.lease import Lease
from survey_mass.catalog.paths import CatalogLayout
from survey_mass.catalog.reader import open_catalog
from survey_mass.cli import main
from survey_mass.errors import UserError
from survey_mass.runner.job import run_job
from survey_mass.spec.job import parse_job_spec

from support.layout import current_root

pytestmark = pytest.mark.timeout(300)


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a catalog by relative path (the lease, logs and temp files aside)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and "_logs" not in p.parts
    }


@pytest.fixture
def copy(mock_catalog, tmp_path):
    """A private copy of the session's finished mock catalog, and its job spec pointed at it."""
    spec, root, summary = mock_catalog
    dest = tmp_path / "cat"
    shutil.copytree(root, dest)
    return spec.model_copy(
        update={"output": spec.output.model_copy(update={"url": str(dest)})}
    ), dest


def _biggest_shard(root: Path) -> Path:
    return max(
        (current_root(root) / "masses" / "dataset").rglob("Npix=*.parquet"),
        key=lambda p: p.stat().st_size,
    )


def _readers_refuse(root: Path, capsys, damaged: str) -> None:
    for argv in (
        ["query", str(root), "SELECT count(*) FROM catalog"],
        ["query", str(root), "--cone", "210", "-5", "0.5"],
        ["export", str(root), str(root.parent / "out.fits")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "is damaged" in err and damaged in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    with pytest.raises(UserError, match="is damaged"):
        open_catalog(str(root))


def _a_margin_file(root: Path) -> Path:
    return max((current_root(root) / "masses_margin" / "dataset").rglob("Npix=*.parquet"))


@pytest.mark.parametrize(
    "damage", ["delete", "truncate", "truncate+metadata", "marker", "margin", "margin-manifest"]
)
def test_a_damaged_catalog_is_refused_by_every_reader_and_a_rerun_repairs_it_exactly(
    copy, mock_catalog, dask_client, capsys, damage
):
    spec, root = copy
    (
        current_root(root) / "masses" / "dataset" / "_metadata"
    ).unlink()  # finalized again here: provenance names this output's url
    run_job(spec, client=dask_client, progress=False)
    clean = _files(root)
    part = _biggest_shard(root)
    pixel = part.stem.split("=")[1]
    if damage.startswith("margin"):  # the margin cache: a re-run rebuilds it, no shard to redo
        margin = _a_margin_file(root)
        if damage == "margin":
            margin.unlink()
            lost = margin.relative_to(current_root(root)).as_posix()
        else:
            (current_root(root) / "masses_margin" / "_manifest.json").unlink()
            lost = "masses_margin/_manifest.json"
        assert verify(str(root)).damaged_shards == []
        _readers_refuse(root, capsys, f"{lost} is missing")
        summary = run_job(spec, client=dask_client, progress=False)
        assert not summary.already_complete and summary.shards_run == 0
        assert _files(root) == clean
        assert verify(str(root), deep=True).ok
        return
    if damage == "delete":
        part.unlink()
    elif damage.startswith("truncate"):
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
        if damage.endswith("metadata"):
            (current_root(root) / "masses" / "dataset" / "_metadata").unlink()
    else:
        (current_root(root) / "_done" / f"Npix={pixel}.json").unlink()
    report = verify(str(root))
    assert not report.ok
    if damage != "truncate+metadata":
        assert report.damaged_shards == [int(pixel)]
        _readers_refuse(root, capsys, f"Npix={pixel}")
        assert main(["verify", str(root)]) == 1
        assert f"Npix={pixel}" in capsys.readouterr().out
    else:
        assert "not finished" in report.summary()

    summary = run_job(spec, client=dask_client, progress=False)
    assert not summary.already_complete and summary.shards_run == 1
    assert _files(root) == clean  # byte for byte what an undamaged run wrote
    assert verify(str(root), deep=True).ok
    assert main(["verify", str(root), "--deep"]) == 0


def test_a_flipped_byte_of_the_same_size_is_found_by_the_deep_check_and_a_deep_rerun_repairs_it(
    copy, dask_client
):
    spec, root = copy
    (current_root(root) / "masses" / "dataset" / "_metadata").unlink()
    run_job(spec, client=dask_client, progress=False)  # finalized for this output's url
    clean = _files(root)
    part = _biggest_shard(root)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    assert verify(str(root)).ok  # the cheap check sees sizes and counts only
    deep = verify(str(root), deep=True)
    assert not deep.ok and "sha256" in deep.problems[0].what
    assert "survey-mass run JOB.toml --deep" in deep.summary()
    assert run_job(spec, client=dask_client, progress=False).already_complete  # not hashed
    summary = run_job(spec, client=dask_client, progress=False, deep=True)
    assert not summary.already_complete and summary.shards_run == 1
    assert _files(root) == clean and verify(str(root), deep=True).ok


def test_a_second_run_on_a_held_output_refuses_naming_the_holder(copy, capsys, tmp_path):
    spec, root = copy
    (
        current_root(root) / "masses" / "dataset" / "_metadata"
    ).unlink()  # unfinished: a run would have work to do
    holder = Lease(CatalogLayout(str(root)), "other-run").acquire()
    job = tmp_path / "job.toml"
    job.write_text(json_to_toml(spec))
    assert main(["run", str(job), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "run other-run" in err and f"pid {os.getpid()}" in err and socket.gethostname() in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    holder.release()


def test_a_waiting_run_starts_when_the_holder_releases(copy, dask_client):
    spec, root = copy
    (current_root(root) / "masses" / "dataset" / "_metadata").unlink()
    holder = Lease(CatalogLayout(str(root)), "other-run").acquire()
    threading.Timer(1.0, holder.release).start()
    summary = run_job(spec, client=dask_client, progress=False, wait=True)
    assert summary.shards_run == 0 and verify(str(root)).ok


def test_a_stale_lease_of_a_dead_run_is_taken_over(copy, dask_client):
    spec, root = copy
    (current_root(root) / "masses" / "dataset" / "_metadata").unlink()
    dead = {"run_id": "dead", "host": socket.gethostname(), "pid": 2**22 + 3, "heartbeat": 0}
    (root / "_lease.json").write_text(json.dumps(dead))
    leftover = (
        next((current_root(root) / "masses" / "dataset").rglob("Dir=*"))
        / ".Npix=1.parquet.dead.00000000.tmp"
    )
    leftover.write_bytes(b"half")
    other = (
        next((current_root(root) / "masses" / "dataset").rglob("Dir=*"))
        / ".Npix=2.parquet.live.00000000.tmp"
    )
    other.write_bytes(b"a concurrent run's")
    run_job(spec, client=dask_client, progress=False)
    assert verify(str(root)).ok and not (root / "_lease.json").exists()
    assert not leftover.exists()  # the dead run's temp file is cleaned ...
    assert other.exists()  # ... a run's whose lease was not taken over is not


def json_to_toml(spec) -> str:
    """The spec as TOML (a JSON object is valid TOML inline only per table: write tables)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for table, values in data.items():
        if isinstance(values, dict):
            lines.append(f"[{table}]")
            for k, v in values.items():
                lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


MISTAKES = [
    (["query", "CAT", "--cone", "150", "2", "-1"], "--cone"),
    (["query", "CAT", "--cone", "150", "2", "0"], "--cone"),
    (["query", "CAT", "--cone", "150", "2", "nan"], "--cone"),
    (["query", "CAT", "--cone", "150", "2", "inf"], "--cone"),
    (["query", "CAT", "--cone", "150", "2", "1000"], "--cone"),
    (["query", "CAT", "--cone", "150", "95", "1"], "--cone"),
    (["query", "CAT", "--cone", "nan", "2", "1"], "--cone"),
]


@pytest.mark.parametrize(("argv", "named"), MISTAKES)
def test_a_bad_cone_is_one_line_naming_it(mock_catalog, capsys, argv, named):
    argv = [str(mock_catalog[1]) if a == "CAT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("cluster", "named"),
    [("options = { bogus = 1 }", "bogus"), ('memory_limit = "lots"', "lots")],
)
def test_bad_cluster_settings_are_refused_by_the_spec(tmp_path, capsys, cluster, named):
    job = tmp_path / "job.toml"
    job.write_text(
        'name = "x"\n[targets]\nfootprint = { kind = "cone", ra = 1.0, dec = 1.0, radius_deg = 0.1 }\n'
        f'[cluster]\n{cluster}\n[output]\nurl = "{tmp_path / "out"}"\n'
    )
    assert main(["run", str(job), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert named in err and "cluster" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_empty_target_list_is_a_valid_queryable_empty_catalog(tmp_path, dask_client, capsys):
    (tmp_path / "t.csv").write_text("id,ra,dec,z\n")
    spec = parse_job_spec(
        f'name = "empty"\n[targets]\ncatalog = "{tmp_path / "t.csv"}"\n[source]\nkind = "real"\n'
        f'[output]\nurl = "{tmp_path / "out"}"\n'
    )
    summary = run_job(spec, client=dask_client, progress=False)
    assert summary.rows == summary.quarantined == 0
    assert verify(str(tmp_path / "out")).ok
    assert main(["query", str(tmp_path / "out"), "SELECT count(*) AS n FROM catalog"]) == 0
    assert capsys.readouterr().out.split() == ["n", "0"]
    assert len(open_catalog(str(tmp_path / "out"))) == 0


def test_a_whole_sky_job_states_its_size_and_needs_yes(tmp_path, capsys):
    job = tmp_path / "sky.toml"
    job.write_text(
        'name = "sky"\nconfirm_above_shards = 100\n[targets]\n'
        'footprint = { kind = "cone", ra = 0.0, dec = 0.0, radius_deg = 180.0 }\n'
        f'[output]\nurl = "{tmp_path / "out"}"\n'
    )
    assert main(["run", str(job), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "shards to run" in err and " h on " in err and "--yes" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "_lease.json").exists()


def test_quarantined_rows_keep_their_input_values(tmp_path, dask_client):
    (tmp_path / "t.csv").write_text("id,ra,dec,z\na,361.0,95.0,0.2\nb,-10.0,1.0,7.0\n")
    spec = parse_job_spec(
        f'name = "q"\n[targets]\ncatalog = "{tmp_path / "t.csv"}"\n[source]\nkind = "real"\n'
        f'[output]\nurl = "{tmp_path / "out"}"\n'
    )
    run_job(spec, client=dask_client, progress=False)
    from survey_mass.catalog.query import query

    rows = query(str(tmp_path / "out"), "SELECT target_id, ra FROM quarantine ORDER BY target_id")
    assert rows["ra"].tolist() == [361.0, -10.0]


def _small_filesystem(path: Path, size: str, readonly: bool = False) -> None:
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    if shutil.which("mount") is None or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount)")


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def job_on(tmp_path):
    def make(url: Path) -> Path:
        job = tmp_path / "job.toml"
        job.write_text(
            'name = "fs"\nbatch_size = 16\n[targets]\n'
            'footprint = { kind = "cone", ra = 210.0, dec = -5.0, radius_deg = 1.3 }\n'
            "shard_order = 5\n[source]\nmock = { seed = 7 }\n"
            '[cluster]\nn_workers = 1\nmemory_limit = "2GiB"\n'
            f'[output]\nurl = "{url}"\n'
        )
        return job

    return make


def _cli(*args: str, **kwargs) -> list[str]:
    exe = shutil.which("survey-mass")
    return [*([exe] if exe else [sys.executable, "-m", "survey_mass.cli"]), *args]


def _console(err: str) -> list[str]:
    """What a person reads on stderr besides the dashboard link every run starts with."""
    return [
        line for line in err.splitlines() if line.strip() and not line.startswith("dashboard: ")
    ]


def test_a_full_disk_is_one_line_per_shard_naming_the_path_and_leaves_no_temp_file(
    tmp_path, job_on
):
    disk = tmp_path / "disk"
    _small_filesystem(disk, "64k")
    try:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        run = subprocess.run(
            _cli("run", str(job_on(disk / "cat")), "--quiet"), capture_output=True, env=env
        )
        assert run.returncode == 2
        lines = _console(run.stderr.decode())
        assert "shard(s) failed (tracebacks in" in lines[0]
        shard_lines = [line for line in lines if line.startswith("  shard-")]
        assert shard_lines and all("cannot write " + str(disk / "cat") in s for s in shard_lines)
        assert "Traceback" not in run.stderr.decode()  # no worker's either
        log = Path(lines[0].split("tracebacks in ")[1].rstrip("):"))
        assert "CatalogWriteError" in log.read_text()  # the full story is in the log
        assert not list(disk.rglob("*.tmp"))
    finally:
        _unmount(disk)


def test_a_read_only_output_at_finalize_is_one_line_naming_the_path(
    mock_catalog, tmp_path, job_on, capsys
):
    disk = tmp_path / "ro"
    _small_filesystem(disk, "16m")
    try:
        shutil.copytree(mock_catalog[1], disk / "cat")
        (current_root(disk / "cat") / "masses" / "dataset" / "_metadata").unlink()
        for p in (current_root(disk / "cat") / "_done").glob(
            "*.json"
        ):  # written by another spec's hash
            marker = json.loads(p.read_text())
            p.write_text(json.dumps(marker))
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        job = job_on(disk / "cat")
        job.write_text(job.read_text().replace('name = "fs"', 'name = "pipeline-test"'))
        job.write_text(
            job.read_text().replace('[cluster]\nn_workers = 1\nmemory_limit = "2GiB"\n', "")
        )
        assert main(["run", str(job), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert str(disk / "cat") in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    finally:
        _unmount(disk)


def test_ctrl_c_stops_the_run_with_one_line_and_exit_130_and_the_rerun_resumes(tmp_path, job_on):
    root = tmp_path / "cat"
    job = job_on(root)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    driver = subprocess.Popen(
        _cli("run", str(job), "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    deadline = 120
    while (
        not list((current_root(root) / "_done").glob("*.json"))
        if (current_root(root) / "_done").exists()
        else True
    ):
        if driver.poll() is not None or deadline <= 0:
            break
        deadline -= 0.2
        threading.Event().wait(0.2)
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C reaches the driver and its workers alike
    out, err = driver.communicate(timeout=120)
    err = err.decode()
    if driver.returncode == 0:
        pytest.skip("the job finished before Ctrl-C could interrupt it")
    assert driver.returncode == 130, err[-2000:]
    assert _console(err) == [_console(err)[0]]  # one line
    assert "interrupted after" in err and "re-run the same command to resume" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert main(["run", str(job), "--quiet"]) == 0
    assert verify(str(root), deep=True).ok


def test_a_refinalized_catalog_keeps_its_hats_creation_dates(copy, dask_client):
    """hats writes dates to the minute: a repair in a later minute must still change no byte."""
    spec, root = copy
    for folder in ("masses", "masses_margin"):
        for name in ("hats.properties", "properties"):
            path = current_root(root) / folder / name
            text = path.read_text()
            date = next(line for line in text.splitlines() if line.startswith("hats_creation_date"))
            path.write_text(text.replace(date, "hats_creation_date=2000-01-01T00:00UTC"))
    (current_root(root) / "masses" / "dataset" / "_metadata").unlink()
    run_job(spec, client=dask_client, progress=False)
    for folder in ("masses", "masses_margin"):
        assert (
            "hats_creation_date=2000-01-01T00:00UTC"
            in (current_root(root) / folder / "hats.properties").read_text()
        )
