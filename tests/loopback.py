"""A Dask cluster on loopback for tests and benchmarks: ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1 (never another address), no dashboard, one thread per worker, the port
learnt from a scheduler file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DASK = str(Path(sys.executable).parent / "dask")


class LoopbackCluster:
    """A scheduler and workers on 127.0.0.1, each its own process (no nanny: a killed worker
    stays dead)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []

    def _spawn(self, args: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.directory / f"proc{len(self.procs)}.log", "wb")
        proc = subprocess.Popen([DASK, *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, cwd=self.directory)
        self.procs.append(proc)
        return proc

    def start(self, workers: int = 2, worker_env: list[dict] | None = None) -> str:
        self._spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(self.scheduler_file)])
        deadline = time.monotonic() + 60
        while not self.scheduler_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        address = json.loads(self.scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(workers):
            self.workers.append(self._spawn(
                ["worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1",
                 "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--no-dashboard",
                 "--local-directory", str(self.directory / f"w{i}")],
                env=(worker_env or [{}] * workers)[i]))
        import distributed  # the optional 'dist' extra: callers skip without it

        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        return address

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def alive(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]
