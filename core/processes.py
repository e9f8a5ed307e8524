"""Which process owns something (an ingest run, a temporary file, a lock), and whether it is dead.

An owner is ``host`` + ``pid`` + a start token (Linux: the boot id and the process's start time
in clock ticks, so a pid reused by another process, or after a reboot, is told apart). Cleaning up
after an owner is only allowed when it is *provably* dead (:func:`is_dead`): same host, and no
process with that pid, or one that started at another time. An owner on another host, or one
that cannot be checked, is presumed alive.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessOwner:
    host: str
    pid: int
    started: str | None = None  # see start_token; None where the platform has none

    def describe(self) -> str:
        return f"pid {self.pid}" + ("" if self.host == this_host() else f" on {self.host}")


def this_host() -> str:
    return socket.gethostname()


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after "pid (comm)" (state first), None when unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def start_token(pid: int) -> str | None:
    """``"<boot id>:<start ticks>"`` of a process on Linux; None when gone or unknown."""
    fields = _proc_stat(pid)
    try:
        boot = _BOOT_ID.read_text().strip()
    except OSError:
        return None
    return None if fields is None else f"{boot}:{fields[19]}"  # starttime is stat's field 22


def this_process() -> ProcessOwner:
    pid = os.getpid()
    return ProcessOwner(this_host(), pid, start_token(pid))


def is_dead(owner: ProcessOwner) -> bool:
    """True only when ``owner`` provably no longer runs (see the module doc)."""
    if owner.host != this_host():
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, under another user
        pass
    fields = _proc_stat(owner.pid)
    if fields is not None and fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
        return True
    if owner.started is not None:
        now = start_token(owner.pid)
        return now is not None and now != owner.started  # the pid now names another process
    return False


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def ask_kernel_to_kill_me_with_parent() -> bool:
    """Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel SIGKILLs this process the moment
    the thread that started it dies (SIGKILL of the parent included). A ``preexec_fn`` for a child
    process, or a pool worker's first step. False where the platform has no such call."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        return False
