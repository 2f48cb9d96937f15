"""Programs on a testbed host: the result of `Host.run`, and the `Process` of `Host.spawn`.

Both are agent operations (docs/agent-protocol.md, `proc_*`): the timeout is enforced
inside the host, every process runs in its own process group and is killed by group,
and nothing goes through `docker exec`.  A spawned process belongs to its host's agent
connection: it is killed when that connection closes, at `close_all`, and by the
pytest plugin when the test that spawned it ends.

Output is captured per stream, stdout and stderr apart, keeping the last `max_output`
bytes of each (1 MiB by default, at most 8 MiB); `stdout_dropped_bytes` /
`stderr_dropped_bytes` say how many were discarded before them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from .errors import RemoteTimeout


class ProcessHost(Protocol):
    """What a Process uses of its host (``Host``): its name, one agent request, and
    forgetting the process once it is closed. A protocol, so this module needs no import of
    host.py, which imports it."""

    name: str

    def call(self, op: str, /, **args: Any) -> dict[str, Any]: ...

    def untrack_process(self, process: Process) -> None: ...


def _decode(value: Any) -> bytes:
    return base64.b64decode(value or "")


@dataclass(frozen=True)
class Output:
    """What a process printed: the kept bytes of each stream and the bytes dropped before them."""

    stdout: bytes
    stderr: bytes
    stdout_dropped_bytes: int = 0
    stderr_dropped_bytes: int = 0

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> Output:
        return cls(_decode(reply.get("stdout")), _decode(reply.get("stderr")),
                   int(reply.get("stdout_dropped", 0)), int(reply.get("stderr_dropped", 0)))

    @property
    def truncated(self) -> bool:
        """True if either stream printed more than was kept (the start is missing)."""
        return bool(self.stdout_dropped_bytes or self.stderr_dropped_bytes)

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def text(self) -> str:
        """stdout as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout_text

    def tail(self, lines: int = 10) -> str:
        """The last `lines` lines of each stream, labelled, for a report."""
        parts = []
        for name, data in (("stdout", self.stdout_text), ("stderr", self.stderr_text)):
            kept = data.rstrip("\n").splitlines()[-lines:]
            parts.append(f"--- {name} (last {len(kept)} lines) ---" + "".join(f"\n{line}" for line in kept))
        return "\n".join(parts)


@dataclass(frozen=True)
class RunResult(Output):
    """A finished `Host.run`: exit code (negative: killed by that signal) and how long it took, seconds."""

    argv: tuple[str, ...] = ()
    returncode: int = 0
    duration_s: float = 0.0
    pid: int = 0


class Process:
    """A program running in the background on a host (`Host.spawn`).

    A context manager: on exit its process group is killed.  `returncode` is None
    while it runs (negative: killed by that signal).
    """

    def __init__(self, host: ProcessHost, handle: int, pid: int, argv: list[str]) -> None:
        self.host = host
        self.handle = handle
        self.pid = pid
        self.argv = list(argv)
        self.returncode: int | None = None
        self.closed = False
        self._last = Output(b"", b"")

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"returncode={self.returncode}"
        return f"<Process {self.host.name} pid {self.pid} {self.argv!r} {state}>"

    def _update(self, reply: dict[str, Any]) -> Output:
        code = reply.get("returncode")
        self.returncode = None if code is None else int(code)
        self._last = Output.from_reply(reply)
        return self._last

    def output(self) -> Output:
        """What it printed so far, stdout and stderr apart (the last output seen once closed)."""
        if self.closed:
            return self._last
        return self._update(self.host.call("proc_output", proc=self.handle))

    def poll(self) -> int | None:
        """The exit code if it has ended, else None (asks the host)."""
        self.output()
        return self.returncode

    def wait(self, timeout: float = 60.0) -> int:
        """Wait up to `timeout` seconds for it to end; its exit code.

        Raises RemoteTimeout (a TimeoutError) if it is still running; it keeps running.
        """
        if self.closed:
            if self.returncode is None:
                raise RemoteTimeout(self.host.name, "proc_wait", "timeout", f"process {self.pid} was killed")
            return self.returncode
        self._update(self.host.call("proc_wait", proc=self.handle, timeout=timeout))
        assert self.returncode is not None
        return self.returncode

    def signal(self, name: str, group: bool = True) -> bool:
        """Send a signal by name ("SIGTERM", "SIGINT", ...) to its process group (or to it alone)."""
        if self.closed:
            return False
        return bool(self.host.call("proc_signal", proc=self.handle, signal=name, group=group)["delivered"])

    def terminate(self) -> bool:
        """SIGTERM to its process group; True if anything was there to receive it."""
        return self.signal("SIGTERM")

    def kill(self) -> Output:
        """SIGKILL its process group and forget it on the host; its final output."""
        if self.closed:
            return self._last
        try:
            self._update(self.host.call("proc_close", proc=self.handle))
        finally:
            self.closed = True
            self.host.untrack_process(self)
        return self._last

    def __enter__(self) -> Process:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()


__all__ = ["Output", "Process", "RunResult"]
