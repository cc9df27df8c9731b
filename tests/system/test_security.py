"""What a job spec, a zoo folder or a query may not do: run code, write, or reach other places.

Models load only with Keras safe_mode after their sha256 checks; SQL over a catalog is one SELECT
that cannot write or read outside the catalog; every fsspec URL of a job spec, each link of a
chained URL included, must use a protocol its table allows, also when given on the command line.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from survey_mass.catalog.query import query
from survey_mass.cli import main
from survey_mass.errors import JobSpecError, UserError
from survey_mass.infer.ensemble import FoldEnsemble
from survey_mass.runner.job import run_job
from survey_mass.spec.job import parse_job_spec
from survey_mass.spec.urls import url_protocols
from survey_mass.zoo.manifest import write_manifest

from support.dask_cli import DaskCLICluster
from support.layout import current_root
from support.mass_catalog_factory import write_mass_catalog

MINIMAL = """
name = "t"
[targets]
{targets}
[output]
url = "{output}"
"""
CONE = 'footprint = { kind = "cone", ra = 150.0, dec = 2.0, radius_deg = 0.3 }'


# --- models -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def code_carrying_entry(tmp_path_factory):
    """A zoo entry with valid hashes whose member hides Python in a Lambda layer; the code, if it
    ever runs, leaves a file."""
    folder = tmp_path_factory.mktemp("zoo") / "xray-evil"
    folder.mkdir()
    marker = folder.parent / "payload-ran"
    inputs = keras.Input((128, 128, 1))
    payload = f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), t)[1]"
    x = keras.layers.Lambda(eval(payload))(inputs)  # a real lambda: saved as bytecode
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(1)(x)).save(folder / "fold0.keras")
    marker.unlink()  # building the model ran it once, here, on purpose
    write_manifest(folder, "xray-evil", "xray", [{"file": "fold0.keras"}], preprocessing="xray-v1")
    return folder, marker


def test_a_model_carrying_python_code_is_refused_and_the_code_never_runs(code_carrying_entry):
    folder, marker = code_carrying_entry
    with pytest.raises(ValueError, match="safe_mode"):
        FoldEnsemble(folder)
    assert not marker.exists()
    # the control: loaded without safe_mode the same file runs its payload
    keras.models.load_model(folder / "fold0.keras", safe_mode=False, compile=False)
    assert marker.exists()
    marker.unlink()


def test_a_run_with_a_code_carrying_model_stops_with_a_clear_error(code_carrying_entry, tmp_path):
    folder, marker = code_carrying_entry
    out = tmp_path / "out"
    spec = parse_job_spec(
        MINIMAL.format(targets=CONE, output=out).replace(
            "[output]", f'[models]\nxray = "{folder}"\n[output]'
        )
    )
    cluster = DaskCLICluster(tmp_path / "dask", n_workers=1)
    try:
        with pytest.raises(UserError, match="workers could not load the models.*safe_mode"):
            run_job(spec, client=cluster.client, progress=False)
    finally:
        cluster.close()
    assert not marker.exists()
    assert (
        not (current_root(out) / "_done").exists()
        and not (current_root(out) / "masses" / "dataset").exists()
    )


def test_a_tampered_model_stops_the_run_before_any_worker_starts(tmp_path, capsys):
    import shutil

    from survey_mass.zoo.registry import SHIPPED_ZOO

    entry = tmp_path / "xray-v1"
    shutil.copytree(SHIPPED_ZOO / "xray-v1", entry)
    member = entry / json.loads((entry / "manifest.json").read_text())["members"][-1]["file"]
    data = bytearray(member.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    member.write_bytes(bytes(data))
    job = tmp_path / "job.toml"
    job.write_text(
        MINIMAL.format(targets=CONE, output=tmp_path / "out").replace(
            "[output]", f'[models]\nxray = "{entry}"\n[output]'
        )
    )
    assert main(["run", str(job), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"models.xray: zoo file {member} fails its integrity check" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


# --- queries ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    """A finished catalog, and a second one beside it that queries of the first must not reach."""
    base = tmp_path_factory.mktemp("catalogs")
    rng = np.random.default_rng(3)
    rows = pd.DataFrame(
        {
            "target_id": [f"T{i}" for i in range(40)],
            "ra": rng.uniform(140, 160, 40),
            "dec": rng.uniform(-5, 5, 40),
            "z": rng.uniform(0.1, 0.8, 40),
            "logm500": rng.uniform(14, 15, 40),
        }
    )
    mine = write_mass_catalog(base / "mine", rows, order=3, instruments=["xray"])
    other = write_mass_catalog(base / "other", rows.head(5), order=3, instruments=["xray"])
    return base, mine, other


def test_select_over_the_catalogs_own_files_still_works(catalogs):
    _, mine, _ = catalogs
    n = query(mine, f"SELECT count(*) AS n FROM read_parquet('{mine}/masses/dataset/**/*.parquet')")
    assert n["n"][0] == 40


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN ANALYZE COPY catalog TO '{mine}/stolen.csv'",
        "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_parquet('{other}/masses/dataset/**/*.parquet')",
        "SELECT * FROM read_text('{other}/provenance.json')",
        "SELECT * FROM glob('{base}/*')",
        "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
        "PRAGMA enable_external_access",
    ],
)
def test_queries_cannot_write_load_extensions_or_reach_beside_the_catalog(catalogs, sql):
    base, mine, other = catalogs
    before = sorted(base.rglob("*"))
    with pytest.raises(UserError):
        query(mine, sql.format(mine=mine, other=other, base=base))
    assert sorted(base.rglob("*")) == before


# --- fsspec URLs --------------------------------------------------------------------------------


def test_chained_urls_name_every_protocol_they_use():
    assert url_protocols("/data/targets.csv") == ["file"]
    assert url_protocols("s3://bucket/t.parquet") == ["s3"]
    assert url_protocols("simplecache::ftp://host/t.csv") == ["simplecache", "ftp"]
    assert url_protocols("zip://t.csv::HTTPS://host/t.zip") == ["zip", "https"]


@pytest.mark.parametrize(
    ("targets", "output", "refused"),
    [
        ('catalog = "ftp://host/targets.csv"', "out/t", "targets.catalog 'ftp://host"),
        ('catalog = "simplecache::ftp://host/t.csv"', "out/t", "protocol 'simplecache'"),
        ('catalog = "zip://t.csv::sftp://host/t.zip"', "out/t", "protocol 'zip'"),
        (
            'catalog = "https://host/t.csv"\nallowed_protocols = ["file"]',
            "out/t",
            "protocol 'https' is not allowed; use one of ['file']",
        ),
        (CONE, "memory::ftp://host/out", "output.url"),
        (CONE, "github://org:repo@main/out", "protocol 'github'"),
    ],
)
def test_job_spec_urls_are_limited_to_their_allowed_protocols(targets, output, refused):
    with pytest.raises(JobSpecError) as err:
        parse_job_spec(
            MINIMAL.format(targets=targets, output=output).replace(
                "[output]", "[source]\nkind = 'real'\n[output]"
            ),
            "job.toml",
        )
    assert refused in str(err.value)


@pytest.mark.parametrize("url", ["s3://bucket/t.parquet", "https://host/t.csv", "/data/t.fits"])
def test_allowed_catalog_urls_parse(url):
    spec = parse_job_spec(
        MINIMAL.format(targets=f'catalog = "{url}"', output="out/t").replace(
            "[output]", "[source]\nkind = 'real'\n[output]"
        )
    )
    assert spec.targets.catalog == url


def test_command_line_overrides_obey_the_same_allow_lists(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text(MINIMAL.format(targets=CONE, output=tmp_path / "out"))
    assert main(["run", str(job), "--output", "ftp://host/catalog"]) == 2
    assert (
        "output.url 'ftp://host/catalog': protocol 'ftp' is not allowed" in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()
