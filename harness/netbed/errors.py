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


class HostNotRunning(TestbedNotRunning):
    """A process operation was sent to a host whose container is not running."""

    __test__ = False


class ProcessError(NetbedError):
    """A program run on a testbed host did not end as asked (see its subclasses)."""


class CommandFailed(ProcessError):
    """`run(..., check=True)` ended with a non-zero exit code.

    Carries `host`, `argv`, `returncode`, `stdout` and `stderr` (bytes); the message
    shows the command and the last lines of its stderr.
    """

    def __init__(self, host: str, argv: list[str], returncode: int, stdout: bytes, stderr: bytes) -> None:
        tail = stderr_tail(stderr)
        super().__init__(f"{host}: {argv!r} exited with {returncode}" + (f"; stderr ends:\n{tail}" if tail else
                                                                        "; no stderr"))
        self.host = host
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class ProcessTimeout(ProcessError, TimeoutError):
    """`run` hit its timeout: the process group was killed.

    Carries `host`, `argv`, `timeout_s` and the output printed before the kill
    (`stdout`, `stderr`, bytes).
    """

    def __init__(self, host: str, argv: list[str], timeout_s: float, stdout: bytes, stderr: bytes) -> None:
        tail = stderr_tail(stderr)
        super().__init__(f"{host}: {argv!r} still running after {timeout_s:g} s; its process group was killed"
                         + (f"; stderr ends:\n{tail}" if tail else ""))
        self.host = host
        self.argv = argv
        self.timeout_s = timeout_s
        self.stdout = stdout
        self.stderr = stderr


def stderr_tail(stderr: bytes, lines: int = 10) -> str:
    """The last `lines` lines of a process's stderr, as text (undecodable bytes replaced)."""
    return "\n".join(stderr.decode("utf-8", "replace").rstrip("\n").splitlines()[-lines:])


class AttachError(NetbedError):
    """An attached container (`Host.attach`) could not be created, started or used."""


class ImageNotLocal(AttachError):
    """An image to attach is not on this machine (netbed never pulls)."""


class CaptureError(NetbedError):
    """A capture at the router could not start, stop or be fetched; the message says why."""
