"""What one control connection owns: its sockets, jobs, processes, background threads.

Everything a request creates belongs to the connection that sent it.  When
that connection closes (or it sends `close_all`, or `reset`), the session is
cleared: sockets are shut down (which wakes any call blocked on them) and
closed, running jobs are told to stop, finished results are dropped, every
process group it started is killed (SIGKILL).  So no client can leave sockets,
jobs, processes or blocked threads behind.

The tables live in their own modules (socket_table.py, jobs.py, process_table.py);
the job and process tables know the session only as the `ThreadOwner` (threads.py)
that runs their threads.
"""

from __future__ import annotations

import socket
import threading

from .jobs import JobTable
from .limits import CLEANUP_WAIT_S
from .process_table import ProcessTable
from .socket_table import SocketTable
from .threads import ThreadOwner


class Session(ThreadOwner):
    """One connection's resources.  `cancelled` is set while it is being cleared."""

    def __init__(self) -> None:
        super().__init__()
        self.sockets = SocketTable()
        self.jobs = JobTable(self)
        self.processes = ProcessTable(self)
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
        self.join_threads(CLEANUP_WAIT_S)
        # Ready for new work on the same connection (close_all, reset).
        self.cancelled.clear()
        return closed
