"""Who owns a testbed: the session that started it, and whether that session is still alive.

A pytest session labels the testbed it starts with `io.netbed.owner=PID@HOST:START`,
START being the process's start time in clock ticks since boot (field 22 of
/proc/PID/stat), so a PID the kernel has since given to another process does not
count as the owner.  A testbed started with `netbed up` (or kept with
--keep-testbed) has an empty owner: it belongs to the user and is never reaped.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

#: States of /proc/PID/stat that mean the process has ended (zombie, dead).
_ENDED_STATES = {"Z", "X", "x"}


def _proc_stat(pid: int, proc: Path) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, or None if there is none."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


@dataclass(frozen=True)
class Owner:
    """A process on a host; `start_ticks` is its start time (clock ticks since boot)."""

    pid: int
    host: str
    start_ticks: int

    @property
    def label(self) -> str:
        return f"{self.pid}@{self.host}:{self.start_ticks}"

    @classmethod
    def parse(cls, label: str) -> Owner | None:
        """The owner a label names, or None for an empty or foreign label."""
        try:
            pid_host, start = label.rsplit(":", 1)
            pid, host = pid_host.split("@", 1)
            return cls(int(pid), host, int(start))
        except ValueError:
            return None

    def is_gone(self, proc: Path = Path("/proc"), hostname: str | None = None) -> bool:
        """True only when we can tell the owner has ended: it ran on this host and its
        PID is free, a zombie, or now another process (a different start time)."""
        if self.host != (hostname or socket.gethostname()):
            return False  # another machine's session: not ours to judge
        if not proc.is_dir():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        stat = _proc_stat(self.pid, proc)
        if stat is None:
            return True
        state, start_ticks = stat
        return state in _ENDED_STATES or start_ticks != self.start_ticks


def current(proc: Path = Path("/proc")) -> Owner:
    """This process, as a testbed owner."""
    pid = os.getpid()
    stat = _proc_stat(pid, proc) if proc.is_dir() else None
    return Owner(pid, socket.gethostname(), stat[1] if stat else 0)
