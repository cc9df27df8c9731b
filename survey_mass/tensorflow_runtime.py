"""TensorFlow, imported quietly: its C++ start-up lines (oneDNN, CUDA stubs, cuInit on a machine
without a GPU) are written to the process's stderr before any log level applies, so they are sent
to /dev/null while TensorFlow loads and first looks for devices. ``survey-mass --verbose`` (which
sets SURVEY_MASS_VERBOSE=1, inherited by worker processes) shows them.
"""

from __future__ import annotations

import contextlib
import os
import sys

VERBOSE_ENV = "SURVEY_MASS_VERBOSE"


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
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if os.environ.get(VERBOSE_ENV) == "1":
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # cuInit's complaint comes at the first query
    return tf
