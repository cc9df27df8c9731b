"""Weigh a job's shards in this process (no Dask, no finalize), as workers would, for tests."""

from __future__ import annotations

import pandas as pd
import pyarrow.dataset as ds

from survey_mass.catalog.paths import CATALOG, QUARANTINE, CatalogLayout
from survey_mass.runner.shard import process_shard
from survey_mass.targets.plan import plan_shards
from survey_mass.zoo.registry import resolve_models


def weigh_in_process(spec, job_hash: str = "testhash") -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(catalog, quarantine) rows the shards wrote; quarantine is None when none was written."""
    models = resolve_models(spec.models, spec.instruments)
    for shard in plan_shards(spec)[1]:
        process_shard(spec, shard, models, job_hash)
    layout = CatalogLayout(spec.output.url)
    tables = []
    for table in (CATALOG, QUARANTINE):
        folder = layout.table_dir(table)
        exists = layout.fs.exists(folder)
        tables.append(
            ds.dataset(folder, format="parquet").to_table().to_pandas() if exists else None
        )
    return tables[0], tables[1]
