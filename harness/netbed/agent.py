"""A control connection to one host's agent (JSON lines over TCP).

See docs/agent-protocol.md for the wire format.  Errors come back as
AgentError subclasses: RemoteOSError (has .errno) for the kernel's errors,
RemoteTimeout for an operation's own timeout.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from typing import Any

from .errors import AgentConnectionError, AgentError, RemoteOSError, RemoteTimeout

#: Extra seconds we wait beyond an operation's own timeout before declaring
#: the agent unresponsive (round trip, scheduling, JSON of big results).
REPLY_MARGIN_S = 30.0


class AgentConnection:
    """One TCP connection to an agent; thread-safe (one request at a time)."""

    def __init__(self, name: str, host: str, port: int, connect_timeout: float = 5.0) -> None:
        self.name = name
        self.address = (host, port)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        try:
            self._sock = socket.create_connection(self.address, timeout=connect_timeout)
        except OSError as exc:
            raise AgentConnectionError(
                f"cannot reach the {name} agent at {host}:{port}: {exc}. Is the testbed up (`make up`)?"
            ) from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rwb")

    def call(self, op: str, /, **args: Any) -> dict[str, Any]:
        """Run `op` on the agent and return its result, or raise its error."""
        op_timeout = float(args.get("timeout") or 5.0)
        request = {"id": next(self._ids), "op": op, "args": args}
        line = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            try:
                self._sock.settimeout(op_timeout + REPLY_MARGIN_S)
                self._file.write(line)
                self._file.flush()
                reply_line = self._file.readline()
            except OSError as exc:
                raise AgentConnectionError(f"{self.name} agent: connection failed during {op}: {exc}") from exc
        if not reply_line:
            raise AgentConnectionError(f"{self.name} agent closed the connection during {op}")
        reply = json.loads(reply_line)
        if reply.get("id") != request["id"]:
            raise AgentConnectionError(f"{self.name} agent: reply id {reply.get('id')} != {request['id']}")
        if reply.get("ok"):
            result: dict[str, Any] = reply.get("result", {})
            return result
        raise error_from_reply(self.name, op, reply.get("error") or {})

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._sock.close()

    def __enter__(self) -> AgentConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_from_reply(host: str, op: str, error: dict[str, Any]) -> AgentError:
    kind = str(error.get("kind", "unknown"))
    message = str(error.get("message", "no message"))
    if kind == "os_error":
        return RemoteOSError(host, op, kind, message, error.get("errno"), error.get("errno_name"))
    if kind == "timeout":
        return RemoteTimeout(host, op, kind, message)
    return AgentError(host, op, kind, message)
