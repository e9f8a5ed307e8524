"""Running ``artdb`` as a real process in its own session, killing it, and finding what survived.

Each run starts a new session (``start_new_session``): every process it forks or spawns (pool
workers, the multiprocessing resource tracker) carries that session id even after its parent dies
and it is re-parented, so ``/proc`` tells exactly which of them are still alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def artdb_env(home: Path, db_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTDB_")}
    env["ARTDB_HOME"] = str(home)
    if db_url:
        env["ARTDB_DATABASE_URL"] = db_url
    env.update(extra)
    return env


def start_artdb(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """``artdb ARGS`` in a new session. Output goes to files, not pipes: an orphaned worker would
    hold a pipe open and make reading it hang after its parent died."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "artdb.cli.main", *args], env=env, stdout=out,
                            stderr=err, text=True, start_new_session=True)
    proc.out_file, proc.err_file = out, err
    return proc


def finish(proc: subprocess.Popen, timeout: float = 600) -> subprocess.CompletedProcess:
    """Wait for ``proc`` (SIGKILL its session on timeout) and read what it wrote."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        raise
    texts = []
    for f in (proc.out_file, proc.err_file):
        f.seek(0)
        texts.append(f.read())
        f.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, *texts)


def stderr_so_far(proc: subprocess.Popen) -> str:
    """What ``proc`` wrote to stderr until now (pread: the shared file offset is left alone)."""
    return os.pread(proc.err_file.fileno(), 1 << 20, 0).decode(errors="replace")


def run_artdb(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return finish(start_artdb(args, env), timeout)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, session id) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[3])


def session_processes(sid: int) -> list[str]:
    """Live (non-zombie) processes of session ``sid``, as "pid cmdline"."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is None or st[1] != sid or st[0] == "Z":
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append(f"{entry.name} {cmd.strip()}")
    return found


def survivors(sid: int, grace: float = 10.0) -> list[str]:
    """Processes of session ``sid`` still alive after ``grace`` seconds (empty: none)."""
    deadline = time.monotonic() + grace
    while True:
        alive = session_processes(sid)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def kill_session(sid: int) -> None:
    """Test cleanup: SIGKILL whatever is left of a session we started."""
    try:
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for line in session_processes(sid):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for_rows(db_url: str, sql: str, at_least: int, proc: subprocess.Popen,
                  timeout: float = 300) -> int:
    """Poll the catalog until the count ``sql`` reaches ``at_least`` (while ``proc`` runs)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    sqlite_file = Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite:///") else None
    engine = create_engine(db_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"artdb ended (status {proc.returncode}) before the kill: "
                                     f"{finish(proc).stderr}")
            if sqlite_file is not None and not sqlite_file.exists():
                time.sleep(0.05)  # connecting would create it
                continue
            try:
                with engine.connect() as conn:
                    n = conn.execute(text(sql)).scalar()
                if n >= at_least:
                    return n
            except (OperationalError, ProgrammingError):  # schema not created yet
                pass
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} never reached {at_least} within {timeout} s")
