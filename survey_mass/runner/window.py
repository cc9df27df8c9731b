"""A bounded window of tasks on the cluster: shards, margin partitions, anything per pixel.

The driver submits a few tasks per worker thread and tops the window up as they finish, so the
scheduler and this client hold a handful of futures, never one per pixel of the footprint: the
driver's memory does not grow with the catalog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

#: tasks in flight: at least this many, or this many per worker thread (workers may join late)
MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD = 8, 4
#: how long the window waits for a task to finish before it looks at Ctrl-C again [s]
POLL_S = 0.5


def run_window(client, submit: Callable, items: Iterable, on_done: Callable, stop=None) -> list:
    """Run ``submit(item)`` futures with a bounded window in flight, topped up as they finish.
    ``on_done(result)`` sees each finished task; (key, exception) of failures are returned.
    ``stop`` (an Event, set by Ctrl-C) is looked at between waits: KeyboardInterrupt then, never
    mid-call."""
    from distributed import wait

    waiting, running = iter(items), set()
    target, asked = MIN_IN_FLIGHT, -1.0

    def top_up() -> None:
        nonlocal target, asked
        if time.monotonic() - asked > 1.0:  # workers come and go: ask once a second
            threads = sum(client.nthreads().values())
            target, asked = max(MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD * threads), time.monotonic()
        while len(running) < target and (item := next(waiting, None)) is not None:
            running.add(submit(item))

    errors = []
    top_up()
    while running:
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        try:  # returns as soon as one finishes: no sleep between a task's end and the next
            finished = wait(list(running), timeout=POLL_S, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            continue
        for future in finished:
            running.discard(future)
            if future.status == "error":
                errors.append((future.key, future.exception()))
            else:
                on_done(future.result())
            future.release()
        top_up()
    return errors
