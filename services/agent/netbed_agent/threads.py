"""Background threads with one owner, and the owner's stop signal.

A `ThreadOwner` starts daemon threads, counts them, and joins them when told; its
`cancelled` event tells them (and any wait through `sleep`) to stop.  A session
(session.py) is the owner of everything one control connection starts; the job and
process tables (jobs.py, process_table.py) start their threads through it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ThreadOwner:
    """Daemon threads started by `spawn`, until they end or `join_threads` waits for them.

    `cancelled` is set while the owner is being cleared: threads check it (or `sleep`
    through it) to stop early.
    """

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()

    def spawn(self, target: Callable[..., object], name: str, *args: object) -> threading.Thread:
        """Start a daemon thread running `target(*args)`, owned until it returns."""
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._threads_lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._threads_lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def thread_count(self) -> int:
        with self._threads_lock:
            return len(self._threads)

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds` unless `cancelled` is set first; True if it was."""
        return self.cancelled.wait(max(0.0, seconds))

    def join_threads(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` seconds in all for the owned threads (but the caller's) to end."""
        deadline = time.monotonic() + timeout_s
        with self._threads_lock:
            threads = [t for t in self._threads if t is not threading.current_thread()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
