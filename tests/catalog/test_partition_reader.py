"""Reading a catalog partition by partition: scans of several files split back into partitions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from survey_mass.catalog import reader
from survey_mass.catalog.paths import resolve

from support.mass_catalog_factory import write_mass_catalog


def _catalog(tmp_path) -> str:
    rng = np.random.default_rng(3)
    n = 400
    rows = pd.DataFrame(
        {
            "target_id": [f"T{i}" for i in range(n)],
            "ra": rng.uniform(0, 360, n),
            "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
            "z": rng.uniform(0.05, 0.9, n),
            "logm500": rng.uniform(14, 15, n),
        }
    )
    return write_mass_catalog(tmp_path / "cat", rows, order=1)


def test_partitions_read_several_files_at_a_time_equal_each_file_read_alone(tmp_path, monkeypatch):
    catalog = _catalog(tmp_path)
    monkeypatch.setattr(reader, "PARTITIONS_PER_READ", 3)  # scans that end mid-catalog
    root = resolve(catalog)
    parts = reader.list_partitions(root)
    assert len(parts) > 3 * 2
    seen = list(reader.iter_partitions(catalog, ["target_id", "ra", "logm500"]))
    assert [(o, p) for o, p, _ in seen] == [(p.order, p.pixel) for p in parts]
    for (_, _, rows), part in zip(seen, parts, strict=True):
        alone = reader.read_partitions(root, [part], ["target_id", "ra", "logm500"])
        pd.testing.assert_frame_equal(rows, alone)
        assert rows.attrs["units"] == alone.attrs["units"] and rows.attrs["units"]["logm500"]
    assert sum(len(r) for _, _, r in seen) == 400
