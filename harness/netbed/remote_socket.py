"""RemoteSocket: a real socket on a testbed host, driven like Python's own.

    srv = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("", 7))
    srv.listen()
    cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.connect((server.ipv4, 7))

Blocking calls take `timeout` (seconds; default: the socket's, see
`settimeout`, else 5 s).  Errors are RemoteOSError (an OSError with the
remote errno) and RemoteTimeout (a TimeoutError).
"""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass
from typing import Any, Protocol

from .job import Job

Address = Any  # (host, port) for IP sockets, a path for AF_UNIX


def _name(value: int | str, enum: type) -> str | int:
    if isinstance(value, str):
        return value
    try:
        return str(enum(value).name)
    except ValueError:
        return value


def _addr(address: Address) -> Any:
    if isinstance(address, tuple):
        return list(address[:2])
    return address


def _unaddr(address: Any) -> Address:
    if isinstance(address, list):
        return (address[0], address[1])
    return address


def _b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


@dataclass(frozen=True)
class Message:
    """What recvmsg() returns: the data, the kernel's flags, the sender."""

    data: bytes
    msg_flags: int
    truncated: bool
    address: Address


class SocketHost(Protocol):
    """What a RemoteSocket uses of its host (a ``netbed.host.Host``).

    A protocol rather than an import of host.py, which imports this module (issue #11)."""

    @property
    def name(self) -> str: ...

    def call(self, op: str, /, **args: Any) -> dict[str, Any]: ...

    def start(self, op: str, **args: Any) -> Job: ...

    def track(self, sock: RemoteSocket) -> None: ...

    def untrack(self, sock: RemoteSocket) -> None: ...


class RemoteSocket:
    """A socket held by an agent; the methods mirror `socket.socket`."""

    def __init__(self, host: SocketHost, fd: int, family: int | str, type: int | str) -> None:
        self.host = host
        self.fd = fd
        self.family = family
        self.type = type
        self._timeout: float | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<RemoteSocket {self.host.name} fd={self.fd} {self.family} {self.type}>"

    def _call(self, op: str, **args: Any) -> dict[str, Any]:
        return self.host.call(op, fd=self.fd, **args)

    def _t(self, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        return self._timeout if self._timeout is not None else 5.0

    # -- the socket API ------------------------------------------------
    def settimeout(self, seconds: float | None) -> None:
        """Default timeout (s) for this socket's blocking calls."""
        self._timeout = seconds

    def bind(self, address: Address) -> Address:
        return _unaddr(self._call("bind", address=_addr(address))["address"])

    def listen(self, backlog: int = 128) -> None:
        self._call("listen", backlog=backlog)

    def accept(self, timeout: float | None = None) -> tuple[RemoteSocket, Address]:
        result = self._call("accept", timeout=self._t(timeout))
        conn = RemoteSocket(self.host, result["fd"], self.family, self.type)
        self.host.track(conn)
        return conn, _unaddr(result["peer"])

    def connect(self, address: Address, timeout: float | None = None) -> None:
        self._call("connect", address=_addr(address), timeout=self._t(timeout))

    def send(self, data: bytes, flags: int = 0, timeout: float | None = None) -> int:
        return int(self._call("send", data=_b64(data), flags=flags, timeout=self._t(timeout))["sent"])

    def sendall(self, data: bytes, timeout: float | None = None) -> None:
        self._call("sendall", data=_b64(data), timeout=self._t(timeout))

    def sendto(self, data: bytes, address: Address, flags: int = 0, timeout: float | None = None) -> int:
        result = self._call("sendto", data=_b64(data), address=_addr(address), flags=flags,
                            timeout=self._t(timeout))
        return int(result["sent"])

    def recv(self, bufsize: int = 65536, flags: int = 0, timeout: float | None = None) -> bytes:
        result = self._call("recv", bufsize=bufsize, flags=flags, timeout=self._t(timeout))
        return base64.b64decode(result["data"])

    def recvfrom(self, bufsize: int = 65536, flags: int = 0,
                 timeout: float | None = None) -> tuple[bytes, Address]:
        result = self._call("recvfrom", bufsize=bufsize, flags=flags, timeout=self._t(timeout))
        return base64.b64decode(result["data"]), _unaddr(result["address"])

    def recvmsg(self, bufsize: int = 65536, flags: int = 0, timeout: float | None = None) -> Message:
        result = self._call("recvmsg", bufsize=bufsize, flags=flags, timeout=self._t(timeout))
        return Message(base64.b64decode(result["data"]), int(result["msg_flags"]),
                       bool(result["truncated"]), _unaddr(result["address"]))

    def setsockopt(self, level: int | str, option: int | str, value: int | bytes) -> None:
        if isinstance(value, (bytes, bytearray)):
            self._call("setsockopt", level=level, option=option, value_bytes=_b64(value))
        else:
            self._call("setsockopt", level=level, option=option, value=value)

    def getsockopt(self, level: int | str, option: int | str, buflen: int | None = None) -> int | bytes:
        result = self._call("getsockopt", level=level, option=option, buflen=buflen)
        if "value_bytes" in result:
            return base64.b64decode(result["value_bytes"])
        return int(result["value"])

    def getsockname(self) -> Address:
        return _unaddr(self._call("getsockname")["address"])

    def getpeername(self) -> Address:
        return _unaddr(self._call("getpeername")["address"])

    def shutdown(self, how: int | str = socket.SHUT_RDWR) -> None:
        names = {socket.SHUT_RD: "SHUT_RD", socket.SHUT_WR: "SHUT_WR", socket.SHUT_RDWR: "SHUT_RDWR"}
        self._call("shutdown", how=names.get(how, how) if isinstance(how, int) else how)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.host.untrack(self)
            self._call("close")

    def __enter__(self) -> RemoteSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workloads that run inside the agent ---------------------------
    def echo(self) -> None:
        """Serve echo on this (bound, listening for streams) socket until closed."""
        self._call("echo")

    def send_sequence(self, count: int, size: int = 64, rate_pps: float = 0.0,
                      address: Address | None = None, first_seq: int = 0,
                      timeout: float = 60.0) -> dict[str, Any]:
        """Send `count` sequence-numbered messages of `size` bytes at `rate_pps` (0: flat out)."""
        args: dict[str, Any] = {"count": count, "size": size, "rate_pps": rate_pps,
                                "first_seq": first_seq, "timeout": timeout}
        if address is not None:
            args["address"] = _addr(address)
        return self._call("send_sequence", **args)

    def start_recv_sequence(self, duration_s: float = 10.0, expect: int | None = None,
                            idle_s: float = 1.0, record_tos: bool = False) -> Job:
        """Start receiving sequence messages in the background; `.wait()` returns
        {"arrivals": [[seq, send_ns, recv_ns, size, crc_ok(, tos)], ...], "foreign": n};
        `record_tos` (IPv4) adds each datagram's IP TOS byte (ECN in its low 2 bits)."""
        return self.host.start("recv_sequence", fd=self.fd, duration_s=duration_s,
                               expect=expect, idle_s=idle_s, record_tos=record_tos or None)

    def start_stream_recv(self, timeout: float = 60.0, bufsize: int = 65536) -> Job:
        """Start reading to end of stream; `.wait()` returns bytes, sha256, read sizes."""
        return self.host.start("stream_recv", fd=self.fd, timeout=timeout, bufsize=bufsize)

    def stream_send(self, nbytes: int, chunk: int = 65536, seed: int = 0,
                    shutdown: bool = True, timeout: float = 60.0) -> dict[str, Any]:
        """Write `nbytes` seeded pseudo-random bytes; returns bytes and sha256."""
        return self._call("stream_send", nbytes=nbytes, chunk=chunk, seed=seed,
                          shutdown=shutdown, timeout=timeout)


def family_name(family: int | str) -> str | int:
    return _name(family, socket.AddressFamily)


def type_name(kind: int | str) -> str | int:
    return _name(kind, socket.SocketKind)
