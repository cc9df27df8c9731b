"""Targets: which clusters a job weighs (``rows``) and how they are grouped into shards (``plan``)."""

from survey_mass.targets.plan import Shard, plan_shards
from survey_mass.targets.rows import TARGET_COLUMNS, check_rows, read_catalog

__all__ = ["TARGET_COLUMNS", "Shard", "check_rows", "plan_shards", "read_catalog"]
