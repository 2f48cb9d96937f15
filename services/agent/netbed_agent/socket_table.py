"""One connection's sockets, by integer handle, and how they are closed.

A handle is a small integer, unique within its table; each control connection's
session holds one table (session.py).  Closing a socket that a call may be
blocked on shuts it down first, which wakes that call.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from .errors import RequestError


class SocketTable:
    """The sockets this agent holds for the harness, by handle (int)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}
        # Handles served by a background thread (echo): closing them must
        # wake that thread, which close() alone does not do on Linux.
        self._background: set[int] = set()
        self._next = 1

    def add(self, sock: socket.socket) -> int:
        with self._lock:
            handle = self._next
            self._next += 1
            self._sockets[handle] = sock
            return handle

    def get(self, handle: Any) -> socket.socket:
        with self._lock:
            sock = self._sockets.get(handle) if type(handle) is int else None
        if sock is None:
            raise RequestError(f"no open socket with handle {handle!r}", kind="bad_handle")
        return sock

    def mark_background(self, handle: int) -> None:
        with self._lock:
            self._background.add(handle)

    def close(self, handle: Any) -> None:
        if type(handle) is not int:
            raise RequestError(f"a socket handle is an integer, got {handle!r}", kind="bad_handle")
        with self._lock:
            sock = self._sockets.pop(handle, None)
            background = handle in self._background
            self._background.discard(handle)
        if sock is None:
            raise RequestError(f"no open socket with handle {handle!r}", kind="bad_handle")
        _close(sock, background)

    def close_all(self) -> int:
        """Close every socket, shutting each down first: that wakes any call
        blocked on it (recv, accept, connect, a job), which close() alone does
        not on Linux."""
        with self._lock:
            items = list(self._sockets.values())
            self._sockets.clear()
            self._background.clear()
        for sock in items:
            _close(sock, True)
        return len(items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sockets)


def _close(sock: socket.socket, wake: bool) -> None:
    if wake:
        try:
            # Wakes a thread blocked in accept()/recv() on this socket.
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    sock.close()
