"""A control connection to one host's agent (JSON lines over TCP).

See docs/agent-protocol.md for the wire format.  Errors come back as
AgentError subclasses: RemoteOSError (has .errno) for the kernel's errors,
RemoteTimeout for an operation's own timeout.

Recovery: a connection that is found closed before a request is sent (the
container restarted) is replaced transparently.  One that breaks while a
request is in flight is replaced too, and the request is sent again only if
it is in IDEMPOTENT_OPS; otherwise the error says the operation may or may
not have run.  A connection whose reply was not read (an interrupt, a reply
timeout) is discarded, never reused, so replies cannot get out of step.  The
agent frees a connection's sockets and jobs when it closes, so handles from a
discarded connection are gone.
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from .errors import AgentConnectionError, AgentError, NetbedError, RemoteOSError, RemoteTimeout

#: Extra seconds we wait beyond an operation's own timeout before declaring
#: the agent unresponsive (round trip, scheduling, JSON of big results).
REPLY_MARGIN_S = 30.0
#: Bound on establishing a connection, seconds (the agent is on this machine).
CONNECT_TIMEOUT_S = 1.5
#: Operations that are safe to send twice: they read state, or set it to a
#: value given in full (impair replaces, clear/reset/close_all end in the same
#: state).  Socket operations are not: their handles belong to the connection
#: that broke.
IDEMPOTENT_OPS = frozenset({
    "ping", "info", "snmp", "route_get", "sysctl", "close_all",
    "router_counters", "impair_status", "impair", "clear", "reset",
    # "Kill every process this connection started": a second run finds none, and a new
    # connection owns none (an agent kills a closed connection's processes), so it is safe to
    # resend. Per-test teardown sends it after a router restart has broken the connection.
    "proc_close_all",
})

#: (host, port, token) of an agent; a resolver is asked again on reconnect,
#: because a restarted container may publish its port elsewhere.
Endpoint = tuple[str, int, str | None]


class AgentConnection:
    """One TCP connection to an agent; thread-safe (one request at a time)."""

    def __init__(self, name: str, host: str, port: int, token: str | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S,
                 resolve: Callable[[], Endpoint] | None = None) -> None:
        self.name = name
        self.address = (host, port)
        self.token = token
        self.connect_timeout = connect_timeout
        self._resolve = resolve
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._open()

    # -- the connection ---------------------------------------------------
    def _open(self) -> None:
        host, port = self.address
        try:
            self._sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        except OSError as exc:
            raise AgentConnectionError(
                f"cannot reach the {self.name} agent at {host}:{port}: {exc}. Is the testbed up (`make up`)?"
            ) from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rwb")

    def _reopen(self) -> None:
        """A fresh connection, asking the resolver where the agent is now."""
        self._discard()
        if self._resolve is not None:
            try:
                host, port, token = self._resolve()
            except AgentConnectionError:
                raise
            except NetbedError as exc:
                raise AgentConnectionError(f"{self.name} agent: {exc}") from exc
            self.address, self.token = (host, port), token
        self._open()

    def _discard(self) -> None:
        file, sock = self._file, self._sock
        self._file = self._sock = None
        try:
            if file is not None:
                file.close()
        except OSError:
            pass
        finally:
            if sock is not None:
                sock.close()

    def _stale(self) -> bool:
        """True if the idle connection was closed by the other side (nothing is
        owed to us between requests, so anything readable means EOF or reset)."""
        if self._sock is None:
            return True
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
            if not readable:
                return False
            return self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    # -- requests ----------------------------------------------------------
    def call(self, op: str, /, **args: Any) -> dict[str, Any]:
        """Run `op` on the agent and return its result, or raise its error."""
        op_timeout = float(args.get("timeout") or 5.0)
        with self._lock:
            if self._stale():
                self._reopen()  # nothing was sent yet: safe for any op
            reply = self._exchange(op, args, op_timeout, retry=op in IDEMPOTENT_OPS)
        if reply.get("ok"):
            result: dict[str, Any] = reply.get("result", {})
            return result
        raise error_from_reply(self.name, op, reply.get("error") or {})

    def _exchange(self, op: str, args: dict[str, Any], op_timeout: float, retry: bool) -> dict[str, Any]:
        request: dict[str, Any] = {"id": next(self._ids), "op": op, "args": args}
        if self.token is not None:
            request["token"] = self.token
        line = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        broken: OSError | None = None
        try:
            assert self._sock is not None and self._file is not None
            self._sock.settimeout(op_timeout + REPLY_MARGIN_S)
            self._file.write(line)
            self._file.flush()
            reply_line = self._file.readline()
        except TimeoutError as exc:
            self._discard()
            raise AgentConnectionError(
                f"{self.name} agent: no reply to {op} within {op_timeout + REPLY_MARGIN_S:g} s; "
                "connection dropped") from exc
        except OSError as exc:
            reply_line, broken = b"", exc
        except BaseException:
            # Interrupted (KeyboardInterrupt, ...) with the reply unread: the
            # connection is out of step, never reuse it.
            self._discard()
            raise
        if not reply_line:
            self._discard()
            if retry:
                self._reopen()
                return self._exchange(op, args, op_timeout, retry=False)
            why = f"connection failed: {broken}" if broken else "the agent closed the connection"
            raise AgentConnectionError(
                f"{self.name} agent: {why} during {op}; it may or may not have run (not retried: "
                f"{op} is not idempotent)") from broken
        try:
            reply: dict[str, Any] = json.loads(reply_line)
        except ValueError as exc:
            self._discard()
            raise AgentConnectionError(f"{self.name} agent: unreadable reply to {op}: {exc}") from exc
        if reply.get("id") != request["id"]:
            self._discard()
            raise AgentConnectionError(f"{self.name} agent: reply id {reply.get('id')} != {request['id']}")
        return reply

    def close(self) -> None:
        with self._lock:
            self._discard()

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
