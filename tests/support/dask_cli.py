"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` as separate processes.

Started on 127.0.0.1 with the same CLI a deployment uses (``python -m dask`` is the ``dask``
command for this interpreter). Workers run without a nanny so a test can SIGKILL one by pid, the way
an out-of-memory killer or a lost node takes a worker away.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from distributed import Client


def wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


class DaskCLICluster:
    """A scheduler process plus worker processes; ``close()`` ends every process it started."""

    def __init__(self, folder: Path, n_workers: int = 2, memory_limit: str = "3GiB"):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = folder / "scheduler.json"
        self.memory_limit = memory_limit
        self.workers: dict[str, subprocess.Popen] = {}
        self._logs = []
        self._count = 0
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
        self.env = env
        self.scheduler = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(self.scheduler_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log("scheduler"),
            env=env,
        )
        wait_for(self._address, 60, "the scheduler file")
        self.client = Client(self.address, timeout="30s")
        for _ in range(n_workers):
            self.add_worker()

    def _log(self, name: str):
        self._logs.append(open(self.folder / f"{name}.log", "wb"))  # noqa: SIM115
        return self._logs[-1]

    def _address(self) -> str | None:
        try:
            return json.loads(self.scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    @property
    def address(self) -> str:
        return self._address()

    def add_worker(self) -> str:
        """Start one worker (1 thread, no nanny); returns its name once the scheduler has it."""
        name = f"w{self._count}"
        self._count += 1
        self.workers[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--memory-limit",
                self.memory_limit,
                "--death-timeout",
                "60",
                "--local-directory",
                str(self.folder / name),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log(name),
            env=self.env,
        )
        wait_for(lambda: name in self.names(), 90, f"worker {name} to join")
        return name

    def names(self) -> dict[str, str]:
        """Live workers: name -> address."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {w["name"]: addr for addr, w in info.items()}

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker process, as a lost node or the OOM killer would."""
        process = self.workers.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        wait_for(lambda: name not in self.names(), 30, f"the scheduler to drop {name}")

    def close(self) -> None:
        """Stop every process started here (workers are killed: a no-nanny worker can hang on
        SIGTERM, and nothing of theirs needs saving)."""
        self.client.close()
        for process in self.workers.values():
            process.kill()
        self.scheduler.terminate()
        for process in [*self.workers.values(), self.scheduler]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for log in self._logs:
            log.close()
