"""Job: an operation running in the background on an agent (see ``Host.start``).

Its own module, apart from host.py, so that remote_socket.py can return Jobs without importing
host.py (which imports remote_socket.py): the import graph stays a DAG (issue #11). A Job only
needs its host's ``call``, stated by the :class:`AgentCaller` protocol.
"""

from __future__ import annotations

from typing import Any, Protocol


class AgentCaller(Protocol):
    """What a Job uses of its host: one raw agent request (``Host.call``)."""

    def call(self, op: str, /, **args: Any) -> dict[str, Any]: ...


class Job:
    """An operation running in the background on an agent."""

    def __init__(self, host: AgentCaller, job_id: int, op: str) -> None:
        self.host = host
        self.id = job_id
        self.op = op

    def wait(self, timeout: float = 120.0) -> dict[str, Any]:
        """The operation's result (or its error, raised), waiting up to `timeout` s."""
        return self.host.call("job_wait", job=self.id, timeout=timeout)


__all__ = ["AgentCaller", "Job"]
