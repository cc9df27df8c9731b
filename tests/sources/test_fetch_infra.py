"""The archive fetchers' plumbing: retries, throttle, request cache, transport, per-target isolation."""

from __future__ import annotations

import random
import threading
import time

import pytest

from survey_mass.sources.archive import ordered_cutouts
from survey_mass.sources.base import Cutout, CutoutError, CutoutFailure, Target
from survey_mass.sources.net.cache import RequestCache, request_key
from survey_mass.sources.net.retry import RetryPolicy, Throttle, TransientError, call_with_retry
from survey_mass.sources.net.transport import DefaultTransport, Response, Service, url_protocol

from support.archives import ArchiveServer, ScriptedTransport


def no_sleep_policy(tries=4, sleeps=None):
    return RetryPolicy(
        max_tries=tries,
        base_s=0.5,
        max_s=4.0,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        rng=random.Random(0),
    )


def make_service(transport, tmp_path, tries=3, timeout_s=5.0, allowed=None):
    return Service(
        "svc",
        transport,
        RequestCache(tmp_path / "cache"),
        throttle=Throttle(4, None),
        retry=no_sleep_policy(tries),
        timeout_s=timeout_s,
        allowed_protocols=allowed,
    )


# --- retry --------------------------------------------------------------------------------------


def test_backoff_is_capped_exponential_with_full_jitter():
    policy = RetryPolicy(max_tries=10, base_s=1.0, max_s=8.0, rng=random.Random(1))
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (7, 8.0)]:
        delays = [policy.delay(attempt) for _ in range(300)]
        assert 0.0 <= min(delays) and max(delays) <= cap
        assert max(delays) > 0.8 * cap  # jitter spans the range, not a fixed wait
    assert policy.delay(1, retry_after=5.0) == 5.0  # the server's Retry-After is honoured
    assert policy.delay(1, retry_after=500.0) == 8.0  # ... within our cap


def test_retry_recovers_from_transient_failures_then_succeeds():
    sleeps: list[float] = []
    outcomes = [TransientError("http", "HTTP 503", 503), TransientError("timeout", "slow"), "ok"]

    def call():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert call_with_retry(call, no_sleep_policy(4, sleeps)) == "ok"
    assert len(sleeps) == 2 and all(0 <= s <= 4.0 for s in sleeps)


@pytest.mark.parametrize(
    "kind, reason",
    [("http", "server_error"), ("timeout", "timeout"), ("connection", "server_error")],
)
def test_retry_gives_up_after_n_tries_with_a_reason(kind, reason):
    calls = []

    def call():
        calls.append(1)
        raise TransientError(kind, "boom", 503 if kind == "http" else None)

    with pytest.raises(CutoutError) as info:
        call_with_retry(call, no_sleep_policy(3), what="skyserver query")
    assert len(calls) == 3
    assert info.value.reason == reason
    assert "after 3 tries" in info.value.detail and "skyserver query" in info.value.detail


def test_permanent_errors_are_not_retried():
    calls = []

    def call():
        calls.append(1)
        raise CutoutError("not_found", "404")

    with pytest.raises(CutoutError):
        call_with_retry(call, no_sleep_policy(5))
    assert len(calls) == 1


# --- throttle -----------------------------------------------------------------------------------


def test_throttle_bounds_requests_in_flight():
    throttle = Throttle(max_concurrency=2, rate_per_s=None)
    barrier_hits = []

    def work():
        with throttle:
            barrier_hits.append(throttle.in_flight)
            time.sleep(0.01)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert throttle.peak_in_flight == 2
    assert max(barrier_hits) <= 2


def test_throttle_spaces_starts_at_the_rate():
    now = [100.0]
    waits: list[float] = []

    def sleep(s):
        waits.append(s)
        now[0] += s

    throttle = Throttle(max_concurrency=4, rate_per_s=5.0, clock=lambda: now[0], sleep=sleep)
    starts = []
    for _ in range(6):
        with throttle:
            starts.append(now[0])
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == pytest.approx([0.2] * 5)


# --- cache --------------------------------------------------------------------------------------


def test_request_key_is_stable_and_order_free():
    a = request_key("sdss", "POST", "https://x/y", {"cmd": "SELECT", "format": "csv"})
    b = request_key("sdss", "POST", "https://x/y", {"format": "csv", "cmd": "SELECT"})
    assert a == b and len(a) == 64
    assert a != request_key("sdss", "POST", "https://x/y", {"cmd": "SELECT 2", "format": "csv"})


def test_cache_write_is_atomic(tmp_path):
    cache = RequestCache(tmp_path)
    key = request_key("a")
    with pytest.raises(RuntimeError), cache.writing("svc", key) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("download died")
    assert cache.get("svc", key) is None
    assert not list((tmp_path / "svc").rglob("*.part"))
    cache.put_bytes("svc", key, b"whole")
    assert cache.get("svc", key).read_bytes() == b"whole"


# --- service: cache first, then transport under retry -------------------------------------------


def test_service_second_fetch_hits_the_cache(tmp_path):
    transport = ScriptedTransport().on("GET", "/q", b"answer")
    service = make_service(transport, tmp_path)
    assert service.fetch("GET", "https://a.org/q", parse=bytes.decode) == "answer"
    again = make_service(transport, tmp_path)  # a new process on the same cache folder
    assert again.fetch("GET", "https://a.org/q", parse=bytes.decode) == "answer"
    assert transport.count("GET") == 1 and again.requests_made == 0


def test_service_does_not_cache_an_answer_that_does_not_parse(tmp_path):
    transport = ScriptedTransport().on("GET", "/q", b"garbage", b"good")

    def parse(content):
        if content != b"good":
            raise CutoutError("bad_fits", "not FITS")
        return content

    service = make_service(transport, tmp_path)
    with pytest.raises(CutoutError, match="bad_fits"):
        service.fetch("GET", "https://a.org/q", parse=parse)
    assert service.fetch("GET", "https://a.org/q", parse=parse) == b"good"
    assert service.fetch("GET", "https://a.org/q", parse=parse) == b"good"
    assert transport.count("GET") == 2


def test_service_statuses(tmp_path):
    transport = (
        ScriptedTransport()
        .on("GET", "/flaky", 503, 502, b"finally")
        .on("GET", "/down", 503)
        .on("GET", "/missing", 404)
        .on("GET", "/forbidden", 403)
        .on("GET", "/busy", Response(429, b"", "x", {"Retry-After": "0"}), b"ok")
    )
    service = make_service(transport, tmp_path, tries=3)
    assert service.fetch("GET", "https://a.org/flaky", parse=bytes) == b"finally"
    assert service.fetch("GET", "https://a.org/busy", parse=bytes) == b"ok"
    with pytest.raises(CutoutError) as info:
        service.fetch("GET", "https://a.org/down", parse=bytes)
    assert info.value.reason == "server_error" and "HTTP 503" in info.value.detail
    assert transport.count("GET", "/down") == 3
    with pytest.raises(CutoutError, match="not_found"):
        service.fetch("GET", "https://a.org/missing", parse=bytes)
    with pytest.raises(CutoutError, match="server_error"):
        service.fetch("GET", "https://a.org/forbidden", parse=bytes)
    assert transport.count("GET", "/missing") == 1 and transport.count("GET", "/forbidden") == 1


def test_service_refuses_protocols_not_allowed(tmp_path):
    service = make_service(ScriptedTransport(), tmp_path, allowed={"https"})
    with pytest.raises(CutoutError, match="protocol_not_allowed"):
        service.fetch_file("ftp://a.org/x.fits", parse=lambda p: p)


def test_url_protocol():
    assert url_protocol("/data/map.fits") == "file"
    assert url_protocol("s3://bucket/key") == "s3"
    assert url_protocol("simplecache::https://a.org/x") == "https"


# --- the real transport against a local server --------------------------------------------------


def test_default_transport_against_local_server(tmp_path):
    transport = DefaultTransport()
    with ArchiveServer() as server:
        server.files["/sas/frame.fits"] = b"F" * 5000
        server.post["/sql"] = lambda form: (200, f"#Table1\n{form['cmd']}".encode())
        server.faults["/sas/frame.fits"] = [503, 503]
        service = make_service(transport, tmp_path, tries=3)
        got = service.fetch_file(f"{server.url}/sas/frame.fits", parse=lambda p: p.read_bytes())
        assert got == b"F" * 5000
        assert server.count("GET", "/sas/frame.fits") == 3  # two 503s, then the file
        answer = service.fetch(
            "POST", f"{server.url}/sql", data={"cmd": "SELECT 1"}, parse=bytes.decode
        )
        assert answer == "#Table1\nSELECT 1"
        # both answers come from the cache now
        again = make_service(transport, tmp_path)
        again.fetch_file(f"{server.url}/sas/frame.fits", parse=lambda p: p.read_bytes())
        again.fetch("POST", f"{server.url}/sql", data={"cmd": "SELECT 1"}, parse=bytes.decode)
        assert server.count() == 4


def test_default_transport_timeouts_and_cut_short_bodies(tmp_path):
    transport = DefaultTransport()
    with ArchiveServer() as server:
        server.files["/f.fits"] = b"F" * 100_000
        server.post["/sql"] = lambda form: (200, b"late")
        server.faults["/sql"] = [("slow", 0.5)] * 2
        server.faults["/f.fits"] = [("truncate", 1000), ("slow", 0.5)]
        service = make_service(transport, tmp_path, tries=2, timeout_s=0.1)
        with pytest.raises(CutoutError) as info:
            service.fetch("POST", f"{server.url}/sql", data={"cmd": "x"}, parse=bytes)
        assert info.value.reason == "timeout"
        with pytest.raises(CutoutError) as info:
            service.fetch_file(f"{server.url}/f.fits", parse=lambda p: p.read_bytes())
        assert info.value.reason == "timeout"  # first cut short, then too slow: gave up
        assert (
            service.cache.get("svc", request_key("svc", "FILE", f"{server.url}/f.fits", {})) is None
        )
        with pytest.raises(CutoutError, match="not_found"):
            service.fetch_file(f"{server.url}/nothing.fits", parse=lambda p: p)


def test_default_transport_lists_http_folders():
    with ArchiveServer() as server:
        server.files["/byobsid/1/4961/primary/acisf04961N003_evt2.fits.gz"] = b"x"
        server.files["/byobsid/1/4961/primary/acisf04961N003_fov1.fits.gz"] = b"x"
        names = DefaultTransport().list(f"{server.url}/byobsid/1/4961/primary", timeout=5)
        assert names == ["acisf04961N003_evt2.fits.gz", "acisf04961N003_fov1.fits.gz"]
        with pytest.raises(FileNotFoundError):
            DefaultTransport().list(f"{server.url}/byobsid/2/12/primary", timeout=5)


# --- one target's failure never stops the others ------------------------------------------------


@pytest.mark.parametrize("workers", [1, 4])
def test_ordered_cutouts_keeps_order_and_isolates_failures(workers):
    targets = [Target(f"t{i}", 10.0 + i, 0.0, 0.2) for i in range(12)]

    def fetch_one(t):
        i = int(t.target_id[1:])
        time.sleep(0.002 * ((7 * i) % 5))  # finish out of order
        if i == 3:
            raise CutoutError("no_coverage", "outside")
        if i == 5:
            raise ZeroDivisionError("a bug")
        return Cutout(t, "optical", None)

    results = list(ordered_cutouts(fetch_one, iter(targets), "optical", workers, "test"))
    assert [r.target.target_id for r in results] == [t.target_id for t in targets]
    assert isinstance(results[3], CutoutFailure) and results[3].reason == "no_coverage"
    assert isinstance(results[5], CutoutFailure) and results[5].reason == "internal_error"
    assert "ZeroDivisionError" in results[5].detail
    assert sum(isinstance(r, Cutout) for r in results) == 10
