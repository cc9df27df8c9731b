"""The one seam between the fetchers and the network, and the per-service client around it.

:class:`Transport` is all that touches the network: ``request`` (HTTP APIs, through requests) and
``download`` / ``list`` (files behind any fsspec URL: local, HTTP, S3...). Tests swap it for a
recording fake or point the URLs at a server on 127.0.0.1. It reports HTTP statuses as they are and
turns timeouts and dropped connections into :class:`~survey_mass.sources.net.retry.TransientError`.

:class:`Service` is what a fetcher holds: one archive service with its cache, throttle and retry
policy. It asks the cache first, keeps an answer only once ``parse`` accepted it, and turns every
failure into a :class:`~survey_mass.sources.base.CutoutError` with a reason for the quarantine table.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from survey_mass.sources.base import CutoutError
from survey_mass.sources.net.cache import RequestCache, request_key
from survey_mass.sources.net.retry import RetryPolicy, Throttle, TransientError, call_with_retry

log = logging.getLogger(__name__)
T = TypeVar("T")
USER_AGENT = "survey-mass (galaxy-cluster mass catalogs; batch client)"
LOCAL_PROTOCOLS = ("file", "local")


def url_protocol(url: str) -> str:
    """fsspec-style protocol of a URL or path: "file" for plain paths, else the scheme."""
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].split("::")[-1].lower()


def check_protocol(url: str, allowed) -> None:
    protocol = url_protocol(url)
    if allowed is not None and protocol not in allowed:
        raise CutoutError(
            "protocol_not_allowed", f"{url!r} uses {protocol!r}; allowed here: {sorted(allowed)}"
        )


def local_path(url: str) -> Path:
    return Path(url.split("://", 1)[1] if "://" in url else url).expanduser()


@dataclass
class Response:
    status: int
    content: bytes
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Transport(Protocol):
    """The network layer: swap it in tests."""

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping | None = None,
        data: Mapping | None = None,
        timeout: float,
    ) -> Response:
        """One HTTP exchange; statuses are returned, timeouts/connection drops raise TransientError."""
        ...

    def download(
        self, url: str, dest: Path, *, timeout: float, storage_options: Mapping | None = None
    ) -> None:
        """Copy the file at fsspec ``url`` to ``dest``; FileNotFoundError if it is not there."""
        ...

    def list(
        self, url: str, *, timeout: float, storage_options: Mapping | None = None
    ) -> list[str]:
        """Names (not paths) of the entries of the fsspec folder ``url``."""
        ...


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: ignore, our own backoff applies


class FsspecErrors:
    """Map what fsspec backends raise onto TransientError / CutoutError."""

    @staticmethod
    def convert(err: BaseException, url: str) -> BaseException:
        if isinstance(err, FileNotFoundError):
            return err
        if isinstance(err, PermissionError):
            return CutoutError("server_error", f"{url}: access denied ({err})")
        status = getattr(err, "status", None) or getattr(err, "code", None)
        if isinstance(status, int):
            if status == 404:
                return FileNotFoundError(url)
            if status == 429 or status >= 500:
                return TransientError("http", f"HTTP {status} from {urlsplit(url).netloc}", status)
            return CutoutError("server_error", f"HTTP {status} from {urlsplit(url).netloc}")
        if isinstance(err, TimeoutError) or "Timeout" in type(err).__name__:
            return TransientError("timeout", f"{url}: timed out ({type(err).__name__})")
        if "Payload" in type(err).__name__ or isinstance(err, EOFError):
            return TransientError("truncated", f"{url}: download cut short ({err})")
        if isinstance(err, (ConnectionError, OSError)) or "Client" in type(err).__name__:
            return TransientError("connection", f"{url}: {type(err).__name__}: {err}")
        return err


class DefaultTransport:
    """requests for HTTP APIs, fsspec for files; one shared ``requests.Session`` per transport."""

    def __init__(self, user_agent: str = USER_AGENT):
        import requests

        self._requests = requests
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent

    def request(self, method, url, *, params=None, data=None, timeout):
        rq = self._requests
        try:
            r = self.session.request(method, url, params=params, data=data, timeout=timeout)
            content = r.content
        except rq.Timeout as err:
            raise TransientError("timeout", f"{method} {url}: no answer in {timeout:g}s") from err
        except (
            rq.ConnectionError,
            rq.exceptions.ChunkedEncodingError,
            rq.exceptions.ContentDecodingError,
        ) as err:
            raise TransientError("connection", f"{method} {url}: {type(err).__name__}") from err
        return Response(r.status_code, content, r.url, dict(r.headers))

    @staticmethod
    def _fs(url: str, timeout: float, storage_options: Mapping | None):
        import fsspec

        options = dict(storage_options or {})
        if url_protocol(url) in ("http", "https") and "client_kwargs" not in options:
            import aiohttp

            options["client_kwargs"] = {
                "timeout": aiohttp.ClientTimeout(
                    total=None, sock_connect=timeout, sock_read=timeout
                ),
                "headers": {"User-Agent": USER_AGENT},
            }
        return fsspec.core.url_to_fs(url, **options)

    def download(self, url, dest, *, timeout, storage_options=None):
        try:
            fs, path = self._fs(url, timeout, storage_options)
            fs.get_file(path, str(dest))
        except Exception as err:
            converted = FsspecErrors.convert(err, url)
            if converted is err:
                raise
            raise converted from err

    def list(self, url, *, timeout, storage_options=None):
        try:
            fs, path = self._fs(url, timeout, storage_options)
            entries = fs.ls(path, detail=False)
        except Exception as err:
            converted = FsspecErrors.convert(err, url)
            if converted is err:
                raise
            raise converted from err
        return sorted({e.rstrip("/").rsplit("/", 1)[-1] for e in entries})


class Service:
    """One archive service: cache first, then the transport under throttle and retries."""

    def __init__(
        self,
        name: str,
        transport: Transport,
        cache: RequestCache,
        *,
        throttle: Throttle,
        retry: RetryPolicy,
        timeout_s: float,
        allowed_protocols=None,
    ):
        self.name = name
        self.transport = transport
        self.cache = cache
        self.throttle = throttle
        self.retry = retry
        self.timeout_s = timeout_s
        self.allowed_protocols = None if allowed_protocols is None else set(allowed_protocols)
        self.requests_made = 0  # attempts that reached the transport (tests, progress)
        self._count_lock = threading.Lock()

    def _count(self) -> None:
        with self._count_lock:
            self.requests_made += 1

    @classmethod
    def from_config(
        cls,
        name: str,
        config,
        transport: Transport,
        cache: RequestCache,
        allowed_protocols=None,
        sleep: Callable[[float], None] | None = None,
    ) -> Service:
        """Build from a ServiceConfig-like object (max_concurrency, rate_per_s, timeout_s, ...)."""
        retry = RetryPolicy(
            max_tries=config.max_tries, base_s=config.backoff_base_s, max_s=config.backoff_max_s
        )
        if sleep is not None:
            retry.sleep = sleep
        throttle = Throttle(config.max_concurrency, config.rate_per_s)
        return cls(
            name,
            transport,
            cache,
            throttle=throttle,
            retry=retry,
            timeout_s=config.timeout_s,
            allowed_protocols=allowed_protocols,
        )

    # -- HTTP APIs -------------------------------------------------------------------------------

    def _checked(self, method: str, url: str, params, data) -> Response:
        self._count()
        r = self.transport.request(method, url, params=params, data=data, timeout=self.timeout_s)
        host = urlsplit(url).netloc or url
        if r.status == 429 or r.status >= 500:
            raise TransientError(
                "http", f"HTTP {r.status} from {host}", r.status, _retry_after(r.headers)
            )
        if r.status == 404:
            raise CutoutError("not_found", f"HTTP 404 from {host}: {url}")
        if r.status >= 400:
            raise CutoutError("server_error", f"HTTP {r.status} from {host}: {r.text[:200]!r}")
        return r

    def fetch(
        self,
        method: str,
        url: str,
        *,
        parse: Callable[[bytes], T],
        params: Mapping | None = None,
        data: Mapping | None = None,
        suffix: str = "",
        what: str | None = None,
    ) -> T:
        """The parsed answer to one HTTP request, from the cache or the service.

        ``parse`` raises CutoutError for an answer that is not usable (bad FITS, error page); such
        an answer is not cached, so the next run asks again.
        """
        check_protocol(url, self.allowed_protocols)
        key = request_key(self.name, method.upper(), url, params or {}, data or {})
        with self.cache.lock(key):
            hit = self.cache.get(self.name, key, suffix)
            if hit is not None:
                try:
                    return parse(hit.read_bytes())
                except CutoutError:
                    log.warning(
                        "%s: cached answer for %s is unusable; fetching again", self.name, url
                    )
                    self.cache.evict(self.name, key, suffix)
            r = call_with_retry(
                lambda: self._checked(method, url, params, data),
                self.retry,
                self.throttle,
                what or f"{self.name} {method} {url}",
            )
            value = parse(r.content)
            self.cache.put_bytes(self.name, key, r.content, suffix)
            return value

    # -- files behind fsspec URLs ----------------------------------------------------------------

    def fetch_file(
        self,
        url: str,
        *,
        parse: Callable[[Path], T],
        storage_options: Mapping | None = None,
        suffix: str = "",
        what: str | None = None,
    ) -> T:
        """Parse the file at ``url``: local files in place, remote ones via the cache.

        A missing file raises CutoutError("not_found"); the caller renames it to what it means.
        """
        check_protocol(url, self.allowed_protocols)
        if url_protocol(url) in LOCAL_PROTOCOLS:
            path = local_path(url)
            if not path.is_file():
                raise CutoutError("not_found", f"no file {path}")
            return parse(path)
        key = request_key(self.name, "FILE", url, storage_options or {})
        with self.cache.lock(key):
            hit = self.cache.get(self.name, key, suffix)
            if hit is not None:
                try:
                    return parse(hit)
                except CutoutError:
                    log.warning("%s: cached copy of %s is unusable; fetching again", self.name, url)
                    self.cache.evict(self.name, key, suffix)
            with self.cache.writing(self.name, key, suffix) as tmp:
                self._download(url, tmp, storage_options, what)
                value = parse(tmp)
            return value

    def _download(self, url, dest: Path, storage_options, what) -> None:
        def attempt():
            self._count()
            try:
                self.transport.download(
                    url, dest, timeout=self.timeout_s, storage_options=storage_options
                )
            except FileNotFoundError as err:
                raise CutoutError("not_found", f"no file at {url}") from err

        call_with_retry(attempt, self.retry, self.throttle, what or f"{self.name} download {url}")

    def list(self, url: str, *, storage_options: Mapping | None = None) -> list[str]:
        """Entry names of the folder at ``url`` (cached); CutoutError("not_found") if none."""
        check_protocol(url, self.allowed_protocols)
        if url_protocol(url) in LOCAL_PROTOCOLS:
            path = local_path(url)
            if not path.is_dir():
                raise CutoutError("not_found", f"no folder {path}")
            return sorted(p.name for p in path.iterdir())
        key = request_key(self.name, "LIST", url, storage_options or {})
        with self.cache.lock(key):
            hit = self.cache.get(self.name, key, ".json")
            if hit is not None:
                return json.loads(hit.read_text())

            def attempt():
                self._count()
                try:
                    return self.transport.list(
                        url, timeout=self.timeout_s, storage_options=storage_options
                    )
                except FileNotFoundError as err:
                    raise CutoutError("not_found", f"no folder at {url}") from err

            names = call_with_retry(attempt, self.retry, self.throttle, f"{self.name} list {url}")
            self.cache.put_bytes(self.name, key, json.dumps(names).encode(), ".json")
            return names
