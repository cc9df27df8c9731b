"""An exclusive lease on a catalog's output: one run writes it at a time.

``OUT/_lease.json`` (the job's output, above its versions) names the holder (run id, host, pid, start time) and carries a heartbeat the
holder refreshes. A second run refuses, naming the holder, or waits for it. A lease is stale when
its holder is a dead process on this host, or its heartbeat is older than ``ttl_s`` (another host,
or object storage where no pid can be checked); a stale lease is taken over by renaming it away
first, which only one contender can do, so two runs never both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from survey_mass.catalog.paths import CatalogLayout
from survey_mass.errors import UserError

HEARTBEAT_S = 10.0
TTL_S = 120.0


class LeaseHeldError(UserError):
    """Another run holds the output."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Lease:
    layout: CatalogLayout
    run_id: str
    ttl_s: float = TTL_S
    stale_runs: tuple[str, ...] = ()  # run ids whose stale leases this run took over

    def _record(self) -> dict:
        return {
            "run_id": self.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "heartbeat": time.time(),
        }

    def _read(self) -> dict | None:
        try:
            return json.loads(self.layout.fs.cat_file(self.layout.lease))
        except FileNotFoundError:
            return None
        except ValueError:  # half-written by a crashed holder: stale
            return {"run_id": "unreadable", "host": "", "pid": -1, "heartbeat": 0.0}

    def is_stale(self, holder: dict) -> bool:
        if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder["pid"])):
            return True
        return time.time() - float(holder.get("heartbeat", 0.0)) > self.ttl_s

    def _create(self) -> bool:
        """Write the lease if none exists; True if this run now holds it."""
        fs, path = self.layout.fs, self.layout.lease
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        data = json.dumps(self._record()).encode()
        if fs.protocol in ("file", "local") or "file" in fs.protocol:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        if fs.exists(path):  # object storage: no exclusive create; write, then read back
            return False
        fs.pipe_file(path, data)
        return (self._read() or {}).get("run_id") == self.run_id

    def _take_over(self, holder: dict) -> bool:
        tomb = f"{self.layout.lease}.{self.run_id}.stale"
        try:
            self.layout.fs.mv(self.layout.lease, tomb)
        except FileNotFoundError:
            return False  # another contender moved it first
        self.layout.fs.rm(tomb)
        self.stale_runs = (*self.stale_runs, holder.get("run_id", ""))
        return self._create()

    def acquire(self, wait: bool = False, poll_s: float = 2.0) -> Lease:
        while True:
            if self._create():
                return self
            holder = self._read()
            if holder is None:
                continue
            if self.is_stale(holder) and self._take_over(holder):
                return self
            if not wait:
                raise LeaseHeldError(
                    f"{self.layout.output} is being written by run {holder.get('run_id')} "
                    f"(host {holder.get('host')}, pid {holder.get('pid')}, started "
                    f"{holder.get('started')}); wait for it (survey-mass run --wait) or use "
                    "another output.url"
                )
            time.sleep(poll_s)

    def beat(self) -> None:
        holder = self._read()
        if holder and holder.get("run_id") == self.run_id:
            holder["heartbeat"] = time.time()
            self.layout.fs.pipe_file(self.layout.lease, json.dumps(holder).encode())

    def release(self) -> None:
        holder = self._read()
        if holder and holder.get("run_id") == self.run_id:
            self.layout.fs.rm(self.layout.lease)


@contextlib.contextmanager
def hold_lease(layout: CatalogLayout, wait: bool = False, run_id: str | None = None):
    """The output's lease for the ``with`` block, refreshed by a heartbeat thread. An output
    folder the lease created is removed again if the run left nothing in it (a run refused
    before its first file: a missing target catalog, say)."""
    folder = layout.lease.rsplit("/", 1)[0]
    new_folder = not layout.fs.exists(folder)
    lease = Lease(layout, run_id or uuid.uuid4().hex[:12]).acquire(wait)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                lease.beat()
            except OSError:
                pass  # a missed beat only shortens the lease's life

    thread = threading.Thread(target=heartbeat, daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join(timeout=5)
        lease.release()
        if new_folder and layout.fs.isdir(folder) and not layout.fs.ls(folder):
            layout.fs.rmdir(folder)
