"""The job runner: shards on Dask workers (``shard``), plan / window / finalize (``job``)."""
