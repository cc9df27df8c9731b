"""A disk cache of archive responses, keyed by request, so a re-run fetches nothing twice.

The key is a hash of what was asked (service, method, URL, parameters), not of what came back, so
a cached answer is found without asking. Only answers that parsed are kept: a truncated download or a
server's error page is never cached. Writes are atomic (temporary file, then rename), so two
threads or two Dask worker processes racing for the same file at worst both download it; a
per-key lock stops threads of one process from doing even that.

Layout: ``ROOT/SERVICE/ab/abcdef...SUFFIX`` -- safe to delete at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE_DIR = "~/.cache/survey-mass"


def request_key(*parts) -> str:
    """Stable hex key of a request: its parts as canonical JSON, hashed."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stored: int = 0


class RequestCache:
    """Responses and downloaded files on disk under ``root``, one folder per service."""

    _N_LOCKS = 256

    def __init__(self, root: str | os.PathLike = DEFAULT_CACHE_DIR):
        self.root = Path(root).expanduser()
        self.stats = CacheStats()
        self._locks = [threading.Lock() for _ in range(self._N_LOCKS)]
        self._stats_lock = threading.Lock()

    def path(self, service: str, key: str, suffix: str = "") -> Path:
        return self.root / service / key[:2] / f"{key}{suffix}"

    def lock(self, key: str) -> threading.Lock:
        """The lock that serialises fetches of ``key`` in this process (striped, never freed)."""
        return self._locks[int(key[:8], 16) % self._N_LOCKS]

    def get(self, service: str, key: str, suffix: str = "") -> Path | None:
        path = self.path(service, key, suffix)
        found = path.is_file()
        with self._stats_lock:
            if found:
                self.stats.hits += 1
            else:
                self.stats.misses += 1
        return path if found else None

    @contextmanager
    def writing(self, service: str, key: str, suffix: str = "") -> Iterator[Path]:
        """A temporary path to fill; it becomes the cache entry only if the block succeeds."""
        final = self.path(service, key, suffix)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{key[:12]}.", suffix=".part")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.replace(tmp_path, final)
            with self._stats_lock:
                self.stats.stored += 1
        finally:
            tmp_path.unlink(missing_ok=True)

    def put_bytes(self, service: str, key: str, data: bytes, suffix: str = "") -> Path:
        with self.writing(service, key, suffix) as tmp:
            tmp.write_bytes(data)
        return self.path(service, key, suffix)

    def evict(self, service: str, key: str, suffix: str = "") -> None:
        self.path(service, key, suffix).unlink(missing_ok=True)
