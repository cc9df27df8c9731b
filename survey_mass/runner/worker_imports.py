"""What every local worker imports, loaded once in the forkserver its processes are forked from.

Each spawned worker imported TensorFlow (~0.5 GiB, most of it private pages: relocated libraries,
~6,000 Python modules) and the shard path on its own; forked from a process that holds them, the
workers share those pages copy-on-write and start without the import (the imported objects are
frozen out of garbage collection, which would otherwise write to, and so copy, all of them). Nothing
here starts a thread or TensorFlow's runtime: thread counts are still set per worker
(``worker_plugin``).
"""

import gc
import signal

# Ctrl-C reaches only the driver, which stops the workers in order (as ``dask_cluster`` does for
# spawned workers): the forkserver hands the handlers it found at start-up to every child
signal.signal(signal.SIGINT, signal.SIG_IGN)

try:
    from survey_mass.tensorflow_runtime import import_tensorflow

    import_tensorflow()

    import hats  # noqa: F401  (the margin's pixel maths, on the workers)

    import survey_mass.runner.shard  # noqa: F401  (the simulator stays out: tests/test_architecture)
    import survey_mass.runner.worker_plugin  # noqa: F401
except Exception:
    # a failed import here would stop the forkserver and every worker with it; a worker that
    # needs the module imports it again and its task reports the error with the shard it failed
    pass

# the cyclic collector writes to every object it tracks: in a forked worker its first full pass
# would copy each page these imports fill. Frozen, their objects are left out of collections
gc.freeze()
