"""Run any operation in the background and collect its result later.

`job_start` returns a job id at once; `job_wait` blocks (up to its timeout)
for the operation's result or error.  This lets the harness start a receiver
on one host, a sender on another, and then gather both.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from .args import Args
from .errors import OperationTimeout, RequestError

MAX_JOBS = 1000


class Job:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.response: dict[str, Any] | None = None


class JobTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)

    def start(self, run: Callable[[], dict[str, Any]]) -> int:
        with self._lock:
            if len(self._jobs) >= MAX_JOBS:
                raise RequestError(f"too many unfinished jobs ({MAX_JOBS}); wait for some first")
            job_id = next(self._ids)
            job = self._jobs[job_id] = Job()

        def body() -> None:
            job.response = run()
            job.done.set()

        threading.Thread(target=body, name=f"job-{job_id}", daemon=True).start()
        return job_id

    def wait(self, job_id: Any, timeout: float) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id) if isinstance(job_id, int) else None
        if job is None:
            raise RequestError(f"no job with id {job_id!r}", kind="bad_handle")
        if not job.done.wait(timeout):
            raise OperationTimeout(f"job {job_id} still running after {timeout:g} s")
        with self._lock:
            self._jobs.pop(job_id, None)
        assert job.response is not None
        return job.response


JOBS = JobTable()


def make_ops(dispatch: Callable[[str, Any], dict[str, Any]]) -> dict[str, Callable[[Args], dict[str, Any]]]:
    """Job operations bound to the agent's dispatcher (which builds responses)."""

    def op_job_start(args: Args) -> dict[str, Any]:
        op = args.str("op", required=True)
        inner = args.raw("args", {})
        args.finish()
        if op.startswith("job_"):
            raise RequestError("job_start: jobs cannot start jobs")
        return {"job": JOBS.start(lambda: dispatch(op, inner))}

    def op_job_wait(args: Args) -> dict[str, Any]:
        job_id = args.raw("job", required=True)
        timeout = args.timeout(60.0)
        args.finish()
        # The inner operation's response, verbatim: the protocol layer
        # unwraps it so a job's error surfaces as that operation's error.
        return {"__response__": JOBS.wait(job_id, timeout)}

    return {"job_start": op_job_start, "job_wait": op_job_wait}
