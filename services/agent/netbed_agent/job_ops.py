"""Run any operation in the background and collect its result later.

`job_start` returns a job id at once; `job_wait` blocks (up to its timeout)
for the operation's result or error.  This lets the harness start a receiver
on one host, a sender on another, and then gather both.

Jobs belong to the connection that started them (its session's `JobTable`,
jobs.py): another connection cannot see them, and they are dropped when their
connection closes or runs `close_all`/`reset`, waited for or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .args import Args
from .errors import RequestError

if TYPE_CHECKING:
    from .session import Session


def make_ops(dispatch: Callable[[str, Any, Session], dict[str, Any]]) -> dict[str, Callable[[Args], dict[str, Any]]]:
    """Job operations bound to the agent's dispatcher (which builds responses)."""

    def op_job_start(args: Args) -> dict[str, Any]:
        op = args.str("op", required=True)
        inner = args.raw("args", {})
        args.finish()
        if op.startswith("job_"):
            raise RequestError("job_start: jobs cannot start jobs")
        session = args.session
        return {"job": session.jobs.start(lambda: dispatch(op, inner, session))}

    def op_job_wait(args: Args) -> dict[str, Any]:
        job_id = args.raw("job", required=True)
        timeout = args.timeout(60.0)
        args.finish()
        # The inner operation's response, verbatim: the protocol layer
        # unwraps it so a job's error surfaces as that operation's error.
        return {"__response__": args.session.jobs.wait(job_id, timeout)}

    return {"job_start": op_job_start, "job_wait": op_job_wait}
