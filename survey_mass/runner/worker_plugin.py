"""A Dask worker plugin that loads the job's ensembles once per worker, never inside tasks."""

from __future__ import annotations

import logging

from distributed.diagnostics.plugin import WorkerPlugin


class EnsemblePlugin(WorkerPlugin):
    """Pre-loads zoo entries (verified, safe_mode) into the worker's process-wide cache."""

    name = "survey-mass-ensembles"

    def __init__(self, paths: list[str], tf_threads: int = 1):
        self.paths = list(paths)
        self.tf_threads = tf_threads

    def setup(self, worker) -> None:
        quiet_task_reports()
        configure_tensorflow(self.tf_threads)
        from survey_mass.infer.ensemble import load_ensemble

        for path in self.paths:
            load_ensemble(path)


def configure_tensorflow(threads: int) -> None:
    """Few threads per worker (workers share cores), and GPU memory that grows as needed."""
    from survey_mass.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # already initialised in this process: settings are fixed
        pass


class _Drop(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_task_reports() -> None:
    """Leave task failures to the driver, which reports one line per shard and keeps the full
    tracebacks in the run's log; a shard cancelled because the user stopped the run is no
    warning either. Every other worker warning (memory pressure, ...) still shows."""
    logging.getLogger("distributed.worker").addFilter(_Drop("Compute Failed"))
    logging.getLogger("distributed.worker.state_machine").addFilter(
        _Drop("ended with CancelledError")
    )
