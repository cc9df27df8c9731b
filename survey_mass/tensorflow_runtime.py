"""TensorFlow, imported quietly: its C++ start-up lines (oneDNN, CUDA stubs, cuInit on a machine
without a GPU) are written to the process's stderr before any log level applies, so they are sent
to /dev/null while TensorFlow loads and first looks for devices. ``survey-mass --verbose`` (which
sets SURVEY_MASS_VERBOSE=1, inherited by worker processes) shows them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

VERBOSE_ENV = "SURVEY_MASS_VERBOSE"


class _FirstTraceFilter(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered retracing" warning: its counter
    is shared by every graph built from one Python function, so the first (and only) trace of each
    z bin's fixed-signature ensemble graph reads as retracing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def import_tensorflow():
    """The ``tensorflow`` module, loaded once per process without its start-up noise."""
    if "tensorflow" not in sys.modules:
        _load_quietly()
    tf = sys.modules["tensorflow"]
    logger = tf.get_logger()
    if not any(isinstance(f, _FirstTraceFilter) for f in logger.filters):
        logger.addFilter(_FirstTraceFilter())
    return tf


def _load_quietly() -> None:
    if os.environ.get(VERBOSE_ENV) == "1":
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # cuInit's complaint comes at the first query
