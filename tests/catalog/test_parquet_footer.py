"""``_metadata`` streamed footer by footer is byte for byte what pyarrow collects in memory."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from survey_mass.catalog.parquet_footer import FooterError, footer_of, stream_metadata


def _pyarrow_metadata(files: dict[str, bytes]) -> bytes:
    collected = None
    for path, data in files.items():
        meta = pq.read_metadata(pa.BufferReader(data))
        meta.set_file_path(path)
        if collected is None:
            collected = meta
        else:
            collected.append_row_groups(meta)
    sink = pa.BufferOutputStream()
    collected.write_metadata_file(sink)
    return sink.getvalue().to_pybytes()


class _Footers:
    def __init__(self, files: dict[str, bytes]):
        self.files, self.passes = files, 0

    def __iter__(self):
        self.passes += 1
        for path, data in self.files.items():
            yield path, footer_of(data)


def _file(n_rows: int, n_columns: int, rng, row_group_size: int | None = None) -> bytes:
    columns = {f"c{i:02d}": rng.normal(size=n_rows) for i in range(n_columns)}
    columns["name"] = [f"cluster-{i}" for i in range(n_rows)]
    columns["n"] = rng.integers(0, 2**40, n_rows)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink, compression="zstd", row_group_size=row_group_size)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(("n_files", "n_columns"), [(1, 2), (3, 20), (40, 3)])
def test_streamed_metadata_is_pyarrows(n_files, n_columns):
    rng = np.random.default_rng(n_files)
    files = {
        f"Norder=6/Dir=0/Npix={i}.parquet": _file(int(rng.integers(1, 300)), n_columns, rng, 64)
        for i in range(n_files)
    }
    footers = _Footers(files)
    streamed = b"".join(stream_metadata(footers))
    assert streamed == _pyarrow_metadata(files)
    assert footers.passes == 2  # counted, then written: never all footers at once
    read = pq.read_metadata(pa.BufferReader(streamed))
    assert read.num_rows == sum(
        pq.read_metadata(pa.BufferReader(d)).num_rows for d in files.values()
    )
    assert (
        read.row_group(read.num_row_groups - 1)
        .column(0)
        .file_path.endswith(f"{n_files - 1}.parquet")
    )


def test_a_damaged_footer_is_refused_not_copied():
    data = _file(10, 2, np.random.default_rng(0))
    with pytest.raises(FooterError, match="PAR1"):
        footer_of(data[:-1])
    cut = data[: -8 - 40] + data[-8:]  # the length says more than is left of the footer
    with pytest.raises(FooterError):
        b"".join(stream_metadata(_Footers({"a.parquet": cut})))


def test_partition_files_of_another_schema_or_a_one_shot_iterable_are_refused():
    rng = np.random.default_rng(1)
    files = {"a.parquet": _file(10, 2, rng), "b.parquet": _file(10, 3, rng)}
    with pytest.raises(FooterError, match="b.parquet has another schema"):
        b"".join(stream_metadata(_Footers(files)))
    same = {"a.parquet": _file(10, 2, rng), "b.parquet": _file(12, 2, rng)}
    one_shot = iter(list(_Footers(same)))  # a generator: the second read finds nothing
    with pytest.raises(FooterError, match="2 row groups counted, 0 on the second read"):
        b"".join(stream_metadata(one_shot))
