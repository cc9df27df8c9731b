"""``survey-mass simulate``: Parquet truth and catalogs with units, FITS cutouts, clear errors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from survey_mass.cli import main

ARGS = ["simulate", "--footprint-cone", "150", "2", "0.7", "--seed", "3", "--quiet"]


def test_writes_truth_catalogs_and_cutouts(tmp_path, capsys):
    out = tmp_path / "survey"
    assert main([*ARGS, "--out", str(out), "--n-cutouts", "1"]) == 0
    assert "clusters" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    truth = pq.read_table(out / "truth.parquet")
    assert truth.num_rows == summary["rows"]["truth"] > 0
    units = json.loads(truth.schema.metadata[b"units"])
    assert units["ra"] == "deg" and units["lx_excised"] == "erg / s"
    for kind in ("redmapper", "weak_lensing", "psz2"):
        table = pq.read_table(out / f"{kind}.parquet")
        assert table.num_rows == summary["rows"][kind]
        assert set(json.loads(table.schema.metadata[b"units"])) == set(table.column_names)
        assert set(table.column("target_id").to_pylist()) <= set(
            truth.column("target_id").to_pylist()
        )
    for instrument in ("xray", "sz", "optical"):
        [path] = (out / "cutouts" / instrument).glob("*.fits")
        with fits.open(path) as hdul:
            assert WCS(hdul[0].header).celestial.has_celestial


def test_same_seed_same_survey_and_n_max(tmp_path):
    for name in ("a", "b"):
        assert main([*ARGS, "--out", str(tmp_path / name), "--n-max", "5", "--n-cutouts", "0"]) == 0
    a, b = (pq.read_table(tmp_path / n / "truth.parquet") for n in ("a", "b"))
    assert a.num_rows == 5 and a.equals(b)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--instruments", "xray,radio"], "unknown radio"),
        (["--n-max", "0"], "--n-max must be a positive"),
    ],
)
def test_bad_input_is_named(tmp_path, capsys, extra, message):
    assert main([*ARGS, "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_bad_cone_and_non_empty_out_are_refused(tmp_path, capsys):
    bad = ["simulate", "--footprint-cone", "150", "95", "1", "--out", str(tmp_path / "y")]
    assert main(bad) == 2
    assert "--footprint-cone" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    assert main([*ARGS, "--out", str(tmp_path / "full")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_stream_buffers_a_bounded_number_of_chunks(tmp_path):
    import pandas as pd

    from survey_mass.mock.survey import _ParquetStream

    stream = _ParquetStream(tmp_path / "t.parquet", {"a": ""})
    for i in range(1000):
        stream.write(pd.DataFrame({"a": [i, i]}))
        assert len(stream.buffer) < _ParquetStream.MAX_CHUNKS
    stream.close(pd.DataFrame({"a": []}))
    assert pq.read_table(tmp_path / "t.parquet").column("a").to_pylist()[-1] == 999
