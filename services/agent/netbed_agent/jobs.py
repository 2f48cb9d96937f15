"""One connection's background jobs: each runs a function on its own thread, by id.

A job's thread belongs to the table's `ThreadOwner` (the connection's session,
session.py); its result waits in the table until `wait` collects it.  Jobs are
dropped when their connection closes or runs `close_all`/`reset`, waited for or
not.  The operations that start and wait for them are in job_ops.py.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from .errors import OperationTimeout, RequestError
from .limits import MAX_JOBS_PER_CONNECTION, MAX_RUNNING_JOBS
from .threads import ThreadOwner

#: Job threads running in the whole agent (all connections).
_RUNNING = threading.BoundedSemaphore(MAX_RUNNING_JOBS)


class Job:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.response: dict[str, Any] | None = None


class JobTable:
    """One session's jobs, by id; `owner` runs their threads."""

    def __init__(self, owner: ThreadOwner) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)

    def start(self, run: Callable[[], dict[str, Any]]) -> int:
        with self._lock:
            if len(self._jobs) >= MAX_JOBS_PER_CONNECTION:
                raise RequestError(
                    f"too many unfinished or unwaited jobs on this connection ({MAX_JOBS_PER_CONNECTION}); "
                    "job_wait for some, or close_all", kind="busy")
            if not _RUNNING.acquire(blocking=False):
                raise RequestError(f"the agent already runs {MAX_RUNNING_JOBS} jobs; wait for some", kind="busy")
            job_id = next(self._ids)
            job = self._jobs[job_id] = Job()

        def body() -> None:
            try:
                response = run()
                if not job.done.is_set():
                    job.response = response
            finally:
                _RUNNING.release()
                job.done.set()

        self._owner.spawn(body, f"job-{job_id}")
        return job_id

    def wait(self, job_id: Any, timeout: float) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id) if type(job_id) is int else None
        if job is None:
            raise RequestError(f"no job with id {job_id!r} on this connection", kind="bad_handle")
        if not job.done.wait(timeout):
            raise OperationTimeout(f"job {job_id} still running after {timeout:g} s")
        with self._lock:
            self._jobs.pop(job_id, None)
        if job.response is None:
            raise RequestError(f"job {job_id} was stopped (close_all, reset)", kind="bad_handle")
        return job.response

    def clear(self) -> None:
        """Forget every job; running ones stop because their sockets are closed."""
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            job.done.set()  # wakes a job_wait on it: "stopped"

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

