"""Translate symbolic socket constants and addresses from requests.

Requests name constants the way Python's socket module does ("AF_INET6",
"SOCK_SEQPACKET", "SOL_SOCKET", "SO_REUSEPORT", "IPPROTO_ICMP"); numbers are
accepted too, for options Python has no name for (SO_NO_CHECK = 11).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any

from .errors import RequestError

FAMILIES = {"AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6, "AF_UNIX": socket.AF_UNIX}
TYPES = {
    "SOCK_STREAM": socket.SOCK_STREAM,
    "SOCK_DGRAM": socket.SOCK_DGRAM,
    "SOCK_RAW": socket.SOCK_RAW,
    "SOCK_SEQPACKET": socket.SOCK_SEQPACKET,
}
# Option names Python's socket module lacks on some versions (Linux values).
EXTRA_CONSTANTS = {
    "SO_NO_CHECK": 11,
    "UDP_NO_CHECK6_TX": 101,
    "UDP_NO_CHECK6_RX": 102,
    "IPPROTO_SCTP": 132,
    "IP_RECVERR": 11,
    "IPV6_RECVERR": 25,
}
LEVELS = ("SOL_", "IPPROTO_")
#: Numbers given for constants must fit the C int the kernel call takes.
C_INT_MIN, C_INT_MAX = -(1 << 31), (1 << 31) - 1
#: sun_path holds 108 bytes, one of them the terminating NUL.
UNIX_PATH_MAX_BYTES = 107
OPTION_PREFIXES = ("SO_", "TCP_", "IP_", "IPV6_", "UDP_", "MSG_")


def _lookup(kind: str, value: Any, table: Mapping[str, int] | None, prefixes: tuple[str, ...]) -> int:
    if isinstance(value, bool):
        raise RequestError(f"{kind} must be a name or a number, got {value!r}")
    if isinstance(value, int):
        if not C_INT_MIN <= value <= C_INT_MAX:
            raise RequestError(f"{kind} {value} does not fit a C int")
        return value
    if not isinstance(value, str):
        raise RequestError(f"{kind} must be a name or a number, got {value!r}")
    if table is not None:
        if value in table:
            return table[value]
        raise RequestError(f"unknown {kind} {value!r}; expected one of {', '.join(table)}")
    if value.startswith(prefixes):
        number = getattr(socket, value, None)
        if number is None:
            number = EXTRA_CONSTANTS.get(value)
        if isinstance(number, int):
            return int(number)
    raise RequestError(f"unknown {kind} {value!r}")


def family(value: Any) -> int:
    return _lookup("address family", value, FAMILIES, ())


def sock_type(value: Any) -> int:
    return _lookup("socket type", value, TYPES, ())


def protocol(value: Any) -> int:
    if value is None:
        return 0
    return _lookup("protocol", value, None, ("IPPROTO_",))


def level(value: Any) -> int:
    return _lookup("socket option level", value, None, LEVELS)


def option(value: Any) -> int:
    return _lookup("socket option", value, None, OPTION_PREFIXES)


def flags(value: Any) -> int:
    """MSG_* flags: a number, a name, or a list of names."""
    if value is None:
        return 0
    if isinstance(value, list):
        result = 0
        for item in value:
            result |= _lookup("message flag", item, None, ("MSG_",))
        return result
    return _lookup("message flag", value, None, ("MSG_",))


def address(fam: int, value: Any) -> Any:
    """A socket address for family `fam` from JSON.

    AF_INET/AF_INET6: ``[host, port]`` (host a literal IP address, or "" for
    any); AF_UNIX: a path string.  Ports outside 0-65535 and non-literal hosts
    are rejected here with a message naming the bad part, rather than by a
    resolver later.
    """
    if fam == socket.AF_UNIX:
        if not isinstance(value, str) or not value:
            raise RequestError(f"AF_UNIX address must be a non-empty path string, got {value!r}")
        try:
            encoded = value.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(f"AF_UNIX path {value!r} is not valid UTF-8 text") from None
        if len(encoded) > UNIX_PATH_MAX_BYTES:
            raise RequestError(f"AF_UNIX path is {len(encoded)} bytes; at most {UNIX_PATH_MAX_BYTES}")
        if "\0" in value[1:]:
            raise RequestError("AF_UNIX path has a NUL byte after its first (abstract names start with one)")
        return value
    if not (isinstance(value, list) and len(value) in (2, 4)):
        raise RequestError(f"address must be [host, port], got {value!r}")
    host, port = value[0], value[1]
    if not isinstance(host, str):
        raise RequestError(f"address host must be a string, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise RequestError(f"port must be an integer in 0-65535, got {port!r}")
    if host:
        try:
            parsed = ipaddress.ip_address(host)
        except ValueError:
            raise RequestError(f"address host must be a literal IP address, got {host!r}") from None
        if "%" in host and not (parsed.version == 6 and parsed.is_link_local):
            raise RequestError(f"a scope (%interface) is for IPv6 link-local addresses only, got {host!r}")
        if (fam == socket.AF_INET) != (parsed.version == 4):
            want = "IPv4" if fam == socket.AF_INET else "IPv6"
            raise RequestError(f"address {host!r} is not an {want} address for this socket")
    if fam == socket.AF_INET6:
        return (host, port, 0, 0)
    return (host, port)


def encode_address(addr: Any) -> Any:
    """A socket address as JSON: [host, port] or a path string."""
    if isinstance(addr, tuple):
        return [addr[0], addr[1]]
    if isinstance(addr, bytes):
        return addr.decode("utf-8", "replace")
    return addr
