"""Socket operations: a table of real sockets, addressed by integer handle.

Each operation mirrors one call of Python's socket API.  Blocking calls take a
`timeout` (seconds) and raise OperationTimeout when it expires; every other
failure is the kernel's own OSError, reported with its errno.  Each control
connection has its own table (socket_table.py, held by its session): handles
are per connection.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from . import names
from .args import Args, b64
from .errors import OperationTimeout, RequestError

MAX_RECV_BYTES = 16 * 1024 * 1024


def _sock(args: Args) -> socket.socket:
    return args.session.sockets.get(args.raw("fd", required=True))


def _blocking(sock: socket.socket, timeout: float, call: Callable[[], Any]) -> Any:
    sock.settimeout(timeout)
    try:
        return call()
    except TimeoutError as exc:
        if exc.errno is not None:
            raise  # the kernel's ETIMEDOUT (e.g. TCP_USER_TIMEOUT): an os_error with errno
        raise OperationTimeout(f"timed out after {timeout:g} s") from None


def op_socket(args: Args) -> dict[str, Any]:
    fam = names.family(args.raw("family", "AF_INET"))
    typ = names.sock_type(args.raw("type", "SOCK_STREAM"))
    proto = names.protocol(args.raw("proto"))
    args.finish()
    sock = socket.socket(fam, typ, proto)
    return {"fd": args.session.sockets.add(sock)}


def op_bind(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    addr = names.address(sock.family, args.raw("address", required=True))
    args.finish()
    sock.bind(addr)
    return {"address": names.encode_address(sock.getsockname())}


def op_listen(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    backlog = args.int("backlog", 128, minimum=0, maximum=65535)
    args.finish()
    sock.listen(backlog)
    return {}


def op_accept(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    timeout = args.timeout()
    args.finish()
    conn, peer = _blocking(sock, timeout, sock.accept)
    return {"fd": args.session.sockets.add(conn), "peer": names.encode_address(peer)}


def op_connect(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    addr = names.address(sock.family, args.raw("address", required=True))
    timeout = args.timeout()
    args.finish()
    _blocking(sock, timeout, lambda: sock.connect(addr))
    return {"address": names.encode_address(sock.getsockname())}


def op_send(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    data = args.bytes("data")
    flags = names.flags(args.raw("flags"))
    timeout = args.timeout()
    args.finish()
    return {"sent": _blocking(sock, timeout, lambda: sock.send(data, flags))}


def op_sendall(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    data = args.bytes("data")
    timeout = args.timeout()
    args.finish()
    _blocking(sock, timeout, lambda: sock.sendall(data))
    return {"sent": len(data)}


def op_sendto(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    data = args.bytes("data")
    addr = names.address(sock.family, args.raw("address", required=True))
    flags = names.flags(args.raw("flags"))
    timeout = args.timeout()
    args.finish()
    return {"sent": _blocking(sock, timeout, lambda: sock.sendto(data, flags, addr))}


def op_recv(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    bufsize = args.int("bufsize", 65536, minimum=0, maximum=MAX_RECV_BYTES)
    flags = names.flags(args.raw("flags"))
    timeout = args.timeout()
    args.finish()
    return {"data": b64(_blocking(sock, timeout, lambda: sock.recv(bufsize, flags)))}


def op_recvfrom(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    bufsize = args.int("bufsize", 65536, minimum=0, maximum=MAX_RECV_BYTES)
    flags = names.flags(args.raw("flags"))
    timeout = args.timeout()
    args.finish()
    data, addr = _blocking(sock, timeout, lambda: sock.recvfrom(bufsize, flags))
    return {"data": b64(data), "address": names.encode_address(addr)}


def op_recvmsg(args: Args) -> dict[str, Any]:
    """recvmsg(): also reports the message flags (MSG_TRUNC shows truncation)."""
    sock = _sock(args)
    bufsize = args.int("bufsize", 65536, minimum=0, maximum=MAX_RECV_BYTES)
    flags = names.flags(args.raw("flags"))
    timeout = args.timeout()
    args.finish()
    data, _anc, msg_flags, addr = _blocking(sock, timeout, lambda: sock.recvmsg(bufsize, 0, flags))
    return {
        "data": b64(data),
        "msg_flags": msg_flags,
        "truncated": bool(msg_flags & socket.MSG_TRUNC),
        "address": names.encode_address(addr),
    }


def op_setsockopt(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    lvl = names.level(args.raw("level", required=True))
    opt = names.option(args.raw("option", required=True))
    value: Any
    if args.has("value_bytes"):
        value = args.bytes("value_bytes")
        args.raw("value")
    else:
        value = args.int("value", required=True)
        args.raw("value_bytes")
    args.finish()
    sock.setsockopt(lvl, opt, value)
    return {}


def op_getsockopt(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    lvl = names.level(args.raw("level", required=True))
    opt = names.option(args.raw("option", required=True))
    buflen = args.opt_int("buflen", minimum=1, maximum=65536)
    args.finish()
    if buflen is None:
        return {"value": sock.getsockopt(lvl, opt)}
    return {"value_bytes": b64(sock.getsockopt(lvl, opt, buflen))}


def op_getsockname(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    args.finish()
    return {"address": names.encode_address(sock.getsockname())}


def op_getpeername(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    args.finish()
    return {"address": names.encode_address(sock.getpeername())}


SHUTDOWN_HOW = {"SHUT_RD": socket.SHUT_RD, "SHUT_WR": socket.SHUT_WR, "SHUT_RDWR": socket.SHUT_RDWR}


def op_shutdown(args: Args) -> dict[str, Any]:
    sock = _sock(args)
    how_name = args.str("how", "SHUT_RDWR")
    args.finish()
    if how_name not in SHUTDOWN_HOW:
        raise RequestError(f"shutdown: 'how' must be one of {', '.join(SHUTDOWN_HOW)}, got {how_name!r}")
    sock.shutdown(SHUTDOWN_HOW[how_name])
    return {}


def op_close(args: Args) -> dict[str, Any]:
    handle = args.raw("fd", required=True)
    args.finish()
    args.session.sockets.close(handle)
    return {}


def op_close_all(args: Args) -> dict[str, Any]:
    """Close this connection's sockets and stop its jobs and background work."""
    args.finish()
    return {"closed": args.session.clear()}


OPS = {
    "socket": op_socket,
    "bind": op_bind,
    "listen": op_listen,
    "accept": op_accept,
    "connect": op_connect,
    "send": op_send,
    "sendall": op_sendall,
    "sendto": op_sendto,
    "recv": op_recv,
    "recvfrom": op_recvfrom,
    "recvmsg": op_recvmsg,
    "setsockopt": op_setsockopt,
    "getsockopt": op_getsockopt,
    "getsockname": op_getsockname,
    "getpeername": op_getpeername,
    "shutdown": op_shutdown,
    "close": op_close,
    "close_all": op_close_all,
}
