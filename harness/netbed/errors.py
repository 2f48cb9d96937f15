"""Every error netbed raises on purpose, in one place.

Each message says what was wrong, where it came from, and what to do.
"""

from __future__ import annotations


class NetbedError(Exception):
    """Base class: anything netbed reports to a user."""


class DockerUnavailable(NetbedError):
    """The Docker engine cannot be reached."""


class ComposeError(NetbedError):
    """A docker compose command failed; the message carries its output."""


class ImageBuildError(NetbedError):
    """The base image could not be found, pulled or bootstrapped."""


class TestbedNotRunning(NetbedError):
    """An operation needs the testbed up, and it is not."""

    __test__ = False  # not a pytest test class, despite the name


class NotReady(NetbedError):
    """A host did not become ready before its deadline."""


class AgentError(NetbedError):
    """An agent answered a request with an error.

    `kind` is the agent's category (os_error, timeout, bad_request, ...);
    `errno`/`errno_name` are set for os_error.
    """

    def __init__(self, host: str, op: str, kind: str, message: str,
                 errno: int | None = None, errno_name: str | None = None) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.op = op
        self.kind = kind
        self.errno = errno
        self.errno_name = errno_name


class RemoteOSError(AgentError, OSError):
    """The kernel on a testbed host failed a socket call (has `.errno`)."""

    def __init__(self, host: str, op: str, kind: str, message: str,
                 errno: int | None = None, errno_name: str | None = None) -> None:
        AgentError.__init__(self, host, op, kind, message, errno, errno_name)
        self.args = (errno, f"{host}: {message}")
        self.strerror = f"{host}: {message}"


class RemoteTimeout(AgentError, TimeoutError):
    """A blocking socket operation on a testbed host hit its timeout."""


class AgentConnectionError(NetbedError):
    """The control connection to an agent failed or was closed."""
