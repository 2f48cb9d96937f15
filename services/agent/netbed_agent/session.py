"""What one control connection owns: its sockets, jobs, processes, background threads.

Everything a request creates belongs to the connection that sent it.  When
that connection closes (or it sends `close_all`, or `reset`), the session is
cleared: sockets are shut down (which wakes any call blocked on them) and
closed, running jobs are told to stop, finished results are dropped, every
process group it started is killed (SIGKILL).  So no client can leave sockets,
jobs, processes or blocked threads behind.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING

from .limits import CLEANUP_WAIT_S

if TYPE_CHECKING:
    from .jobs import JobTable
    from .processes import ProcessTable
    from .sockets import SocketTable


class Session:
    """One connection's resources.  `cancelled` is set while it is being cleared."""

    def __init__(self) -> None:
        from .jobs import JobTable
        from .processes import ProcessTable
        from .sockets import SocketTable

        self.sockets: SocketTable = SocketTable()
        self.jobs: JobTable = JobTable(self)
        self.processes: ProcessTable = ProcessTable(self)
        self.cancelled = threading.Event()
        self._threads: set[threading.Thread] = set()
        # Sockets background work opened itself (echo's accepted connections):
        # not addressable by handle, but shut down by `clear` all the same.
        self._hidden: set[socket.socket] = set()
        self._lock = threading.Lock()

    def adopt(self, sock: socket.socket) -> None:
        with self._lock:
            self._hidden.add(sock)

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._hidden.discard(sock)

    def spawn(self, target: object, name: str, *args: object) -> threading.Thread:
        """Start a daemon thread owned by this session (joined by `clear`)."""
        def run() -> None:
            try:
                target(*args)  # type: ignore[operator]
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def thread_count(self) -> int:
        with self._lock:
            return len(self._threads)

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds` unless the session is cleared first; True if cleared."""
        return self.cancelled.wait(max(0.0, seconds))

    def clear(self) -> int:
        """Close every socket, stop every job, process and thread; returns sockets closed.

        Waits up to CLEANUP_WAIT_S for the threads to end, so a caller sees
        the resources gone when this returns.
        """
        self.cancelled.set()
        closed = self.sockets.close_all()
        with self._lock:
            hidden = list(self._hidden)
            self._hidden.clear()
        for sock in hidden:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.jobs.clear()
        # Killing the process groups also ends their pump threads (EOF on the pipes).
        self.processes.clear()
        deadline = time.monotonic() + CLEANUP_WAIT_S
        with self._lock:
            threads = [t for t in self._threads if t is not threading.current_thread()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        # Ready for new work on the same connection (close_all, reset).
        self.cancelled.clear()
        return closed
