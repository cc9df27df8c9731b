"""Politeness and persistence towards archives: concurrency and rate limits, retries with backoff.

One :class:`Throttle` per service and process bounds how many requests are in flight and how many
start per second; :func:`call_with_retry` repeats a call that failed transiently (timeout, dropped
connection, HTTP 429/5xx) with capped exponential backoff and full jitter, and gives up with a
:class:`~survey_mass.sources.base.CutoutError` whose reason ("timeout", "server_error") ends in the
quarantine table. Clock, sleep and random source are injectable so tests never really wait.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from survey_mass.sources.base import CutoutError

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransientError(Exception):
    """A failure worth trying again: ``kind`` is "timeout", "connection", "http" or "truncated"."""

    def __init__(
        self, kind: str, detail: str, status: int | None = None, retry_after: float | None = None
    ):
        self.kind = kind
        self.status = status
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"{kind}: {detail}")


@dataclass
class RetryPolicy:
    """Capped exponential backoff with full jitter: try ``max_tries`` times in all."""

    max_tries: int = 4
    base_s: float = 1.0
    max_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        wait = self.rng.uniform(0.0, cap)
        if retry_after is not None:  # the server said when: honour it, within our cap
            wait = max(wait, min(retry_after, self.max_s))
        return wait


class Throttle:
    """At most ``max_concurrency`` calls in flight and ``rate_per_s`` starts per second.

    Thread-safe; shared by every fetch of one service in this process. Starts are spaced evenly
    (a token bucket of depth one), which is what archive operators ask of batch clients.
    """

    def __init__(
        self,
        max_concurrency: int = 4,
        rate_per_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.max_concurrency = max_concurrency
        self.rate_per_s = rate_per_s
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()
        self._next_start = 0.0
        self._clock = clock
        self._sleep = sleep
        self.in_flight = 0
        self.peak_in_flight = 0

    def _wait_for_rate(self) -> None:
        if not self.rate_per_s:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / self.rate_per_s
        if start > now:
            self._sleep(start - now)

    def __enter__(self):
        self._slots.acquire()
        try:
            self._wait_for_rate()
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return self

    def __exit__(self, *exc):
        with self._lock:
            self.in_flight -= 1
        self._slots.release()
        return False


def call_with_retry(
    call: Callable[[], T],
    policy: RetryPolicy,
    throttle: Throttle | None = None,
    what: str = "request",
) -> T:
    """Run ``call`` (under ``throttle``), retrying :class:`TransientError` per ``policy``.

    Any other exception passes through untouched. After the last try the failure becomes a
    :class:`CutoutError` with reason "timeout" (the last try timed out) or "server_error".
    """
    last: TransientError | None = None
    for attempt in range(1, policy.max_tries + 1):
        try:
            if throttle is None:
                return call()
            with throttle:
                return call()
        except TransientError as err:
            last = err
            if attempt == policy.max_tries:
                break
            wait = policy.delay(attempt, err.retry_after)
            log.info(
                "%s failed (%s), try %d/%d; retrying in %.2fs",
                what,
                err,
                attempt,
                policy.max_tries,
                wait,
            )
            policy.sleep(wait)
    assert last is not None
    reason = "timeout" if last.kind == "timeout" else "server_error"
    tries = f"{policy.max_tries} tr{'y' if policy.max_tries == 1 else 'ies'}"
    raise CutoutError(reason, f"{what}: {last.detail} (gave up after {tries})")
