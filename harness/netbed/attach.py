"""Your own image beside a testbed host, in its network namespace (a pod's sidecar).

`host.attach(image)` starts a container of an unchanged image with
`network_mode: container:<host>`: it has the host's addresses and routes, so every packet
it sends to the other side crosses the router. The image needs no agent: readiness is
checked by the host's agent (`ss` in the shared namespace), and `run` uses `docker exec`
with a deadline.

Lifecycle: the container carries the testbed's labels (io.netbed.testbed, .instance,
.owner) plus io.netbed.attachment=<host>, so `netbed down`, `netbed clean` and the reaper
find it by label; the pytest plugin removes a test's attachments when the test ends and
shows their logs in a failing test's report. The image must be on the machine: netbed
never pulls (many machines reach no registry, and a pull would hang).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import docker
import docker.errors

from . import docker_api
from .errors import AttachError, CommandFailed, HostNotRunning, ImageNotLocal, NotReady, ProcessTimeout
from .process import RunResult

LABEL_ATTACHMENT = docker_api.LABEL_ATTACHMENT
#: How often wait_for_port asks the host's agent, seconds.
PORT_POLL_S = 0.05
#: Lines of its log a failing test's report shows per attachment.
REPORT_LOG_LINES = 40
_PROTOCOLS = {"tcp": "-Hltn", "udp": "-Hlun"}
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


class AttachHost(Protocol):
    """What an attachment uses of its host (``Host``): a protocol, so host.py can import this."""

    name: str
    container: Any

    @property
    def instance(self) -> str: ...

    def run(self, argv: Sequence[str], *, timeout: float) -> RunResult: ...

    def untrack_attachment(self, attachment: Attachment) -> None: ...


def _argv(value: object, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(a, str) for a in value):
        raise TypeError(f"{what} must be a list of strings (no shell: use ['sh', '-c', ...] for one), "
                        f"got {value!r}")
    return list(value)


def check_image_is_local(client: docker.DockerClient, image: str) -> None:
    """ImageNotLocal (one line, naming it) unless the engine has `image`: nothing is pulled."""
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ImageNotLocal(f"image {image!r} is not on this machine: build it (`docker build -t {image} DIR`) "
                            "or load it (`docker load -i FILE`) first; netbed never pulls images") from None


def start(host: AttachHost, image: str, command: Sequence[str] | None = None, *,
          env: Mapping[str, str] | None = None, volumes: Any = None, name: str | None = None,
          owner: str = "") -> Attachment:
    """Start `image` in `host`'s network namespace; see Host.attach. `owner`: io.netbed.owner
    (the session's, so a killed session's attachments are reaped; "" lives with the testbed)."""
    argv = _argv(command, "command")
    if not isinstance(image, str) or not image:
        raise TypeError(f"image must be an image name such as 'myapp:1', got {image!r}")
    if name is not None and not _NAME_RE.match(name):
        raise AttachError(f"bad attachment name {name!r}: use up to 63 letters, digits, '_', '.' or '-'")
    host_container = host.container
    if host_container is None:
        raise HostNotRunning(f"cannot attach {image} to {host.name}: no container handle (testbed "
                             f"'{host.instance}')")
    client = host_container.client
    try:
        host_container.reload()
    except docker.errors.NotFound:
        raise HostNotRunning(f"cannot attach {image} to {host.name}: its container is gone (testbed "
                             f"'{host.instance}'); run `netbed up`") from None
    if host_container.status != "running":
        raise HostNotRunning(f"cannot attach {image} to {host.name}: its container {host_container.name} in "
                             f"testbed '{host.instance}' is {host_container.status}; run `netbed up`")
    check_image_is_local(client, image)
    labels = {docker_api.LABEL_TESTBED: "true", docker_api.LABEL_INSTANCE: host.instance,
              docker_api.LABEL_OWNER: owner, LABEL_ATTACHMENT: host.name}
    container_name = f"{host.instance}-{host.name}-{name or 'attach-' + uuid.uuid4().hex[:8]}"
    try:
        container = client.containers.create(
            image, argv, name=container_name, labels=labels, environment=dict(env) if env else None,
            volumes=volumes, network_mode=f"container:{host_container.id}",
            init=True,  # the image's program is not PID 1: signals and zombies are handled
        )
    except docker.errors.APIError as exc:
        raise AttachError(f"cannot create {container_name} from {image} on {host.name}: "
                          f"{exc.explanation or exc}") from None
    attachment = Attachment(host, container, image, container_name)
    try:
        container.start()
    except BaseException as exc:
        reason = exc.explanation if isinstance(exc, docker.errors.APIError) else exc
        attachment.stop()
        if isinstance(exc, docker.errors.APIError):
            raise AttachError(f"cannot start {container_name} ({image}) on {host.name}: {reason}") from None
        raise
    return attachment


class Attachment:
    """A container of your image in a host's network namespace (`Host.attach`).

    A context manager: removed on exit (and at the end of the test, by the plugin).
    """

    def __init__(self, host: AttachHost, container: Any, image: str, name: str) -> None:
        self.host = host
        self.container = container
        self.image = image
        self.name = name
        self.stopped = False

    def __repr__(self) -> str:
        return f"<Attachment {self.name} {self.image} on {self.host.name}>"

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def status(self) -> str:
        """The container's state (running, exited, ...; "removed" once gone)."""
        try:
            self.container.reload()
        except docker.errors.NotFound:
            return "removed"
        return str(self.container.status)

    def logs(self, tail: int | None = None) -> str:
        """What the container printed (stdout and stderr interleaved), as text; `tail`: last lines only."""
        try:
            data = self.container.logs(stdout=True, stderr=True, tail="all" if tail is None else tail)
        except docker.errors.NotFound:
            return "(container removed)"
        return bytes(data).decode("utf-8", "replace")

    def _not_running(self, status: str, doing: str) -> AttachError:
        tail = self.logs(tail=20).rstrip("\n")
        return AttachError(f"{self.name} ({self.image}) on {self.host.name} in testbed '{self.host.instance}' is "
                           f"{status}, cannot {doing}" + (f"; its last log lines:\n{tail}" if tail else ""))

    def wait_for_port(self, port: int, proto: str = "tcp", timeout: float = 30.0) -> None:
        """Return once something listens on `port` (`proto` tcp or udp) in the host's namespace,
        as the host's agent sees it (`ss`); NotReady after `timeout` seconds, with the logs."""
        if proto not in _PROTOCOLS:
            raise ValueError(f"proto must be 'tcp' or 'udp', got {proto!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be 1-65535, got {port!r}")
        deadline = time.monotonic() + timeout
        while True:
            listening = self.host.run(["ss", _PROTOCOLS[proto], "sport", "=", f":{port}"], timeout=10)
            if listening.stdout.strip():
                return
            status = self.status
            if status != "running":
                raise self._not_running(status, f"listen on {proto} port {port}")
            if time.monotonic() >= deadline:
                tail = self.logs(tail=20).rstrip("\n")
                raise NotReady(f"{self.name} ({self.image}) on {self.host.name}: nothing listens on {proto} port "
                               f"{port} after {timeout:g} s" + (f"; its last log lines:\n{tail}" if tail else ""))
            time.sleep(PORT_POLL_S)  # polling the namespace, with the deadline above

    def run(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
            check: bool = False) -> RunResult:
        """Run `argv` in the attached container (`docker exec`, no shell) to completion.

        timeout: seconds; when it expires the process is killed (where the engine is on
        this machine) and ProcessTimeout raised with the output so far. check: raise
        CommandFailed on a non-zero exit.
        """
        command = _argv(argv, "argv")
        assert command is not None
        if not command:
            raise ValueError("argv is empty")
        status = self.status
        if status != "running":
            raise self._not_running(status, f"run {command!r}")
        api = self.container.client.api
        where = f"{self.host.name}/{self.name}"
        started = time.monotonic()
        exec_id = api.exec_create(self.container.id, command, stdout=True, stderr=True,
                                  environment=dict(env) if env else None)["Id"]
        chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

        def read() -> None:
            for out, err in api.exec_start(exec_id, stream=True, demux=True):
                if out:
                    chunks["stdout"].append(out)
                if err:
                    chunks["stderr"].append(err)

        reader = threading.Thread(target=read, name=f"netbed-exec-{self.name}", daemon=True)
        reader.start()
        reader.join(timeout)
        stdout, stderr = b"".join(chunks["stdout"]), b"".join(chunks["stderr"])
        if reader.is_alive():
            _kill_exec(api, exec_id, str(self.container.id))
            raise ProcessTimeout(where, command, float(timeout), stdout, stderr)
        info = api.exec_inspect(exec_id)
        result = RunResult(stdout, stderr, argv=tuple(command), returncode=int(info.get("ExitCode") or 0),
                           duration_s=time.monotonic() - started, pid=int(info.get("Pid") or 0))
        if check and result.returncode != 0:
            raise CommandFailed(where, command, result.returncode, stdout, stderr)
        return result

    def stop(self) -> None:
        """Remove the container (killed at once); idempotent."""
        if not self.stopped:
            self.stopped = True
            with contextlib.suppress(docker.errors.NotFound):
                self.container.remove(force=True, v=True)
        self.host.untrack_attachment(self)


def _kill_exec(api: Any, exec_id: str, container_id: str, proc: Path = Path("/proc")) -> bool:
    """Kill a timed-out exec'd process. Docker has no API for it: its PID (in the engine's
    PID namespace) is killed where the engine runs on this machine, checked through the
    process's cgroup so that a remote engine's PID never hits a local process. False when
    it could not be killed (it ends when the attachment is removed)."""
    pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
    try:
        if not pid or container_id not in (proc / str(pid) / "cgroup").read_text():
            return False
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        return False
    return True


def remove_attachments(client: docker.DockerClient, instance: str) -> list[str]:
    """Remove every attachment of testbed `instance` (before its hosts: they hold the namespaces)."""
    flt: dict[str, Any] = {"label": [f"{docker_api.LABEL_INSTANCE}={instance}", LABEL_ATTACHMENT]}
    removed = []
    for container in client.containers.list(all=True, filters=flt, ignore_removed=True):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            removed.append(str(container.name))
    return removed


def describe(client: docker.DockerClient, instance: str) -> list[dict[str, str]]:
    """Every attachment of testbed `instance`: name, image, host, state (for `netbed status`)."""
    flt: dict[str, Any] = {"label": [f"{docker_api.LABEL_INSTANCE}={instance}", LABEL_ATTACHMENT]}
    found = []
    for container in client.containers.list(all=True, filters=flt, ignore_removed=True):
        config = container.attrs.get("Config") or {}
        found.append({"name": str(container.name), "image": str(config.get("Image", "?")),
                      "host": str(container.labels.get(LABEL_ATTACHMENT, "?")), "state": str(container.status)})
    return sorted(found, key=lambda entry: entry["name"])


def report_sections(attachments: Sequence[Attachment]) -> list[tuple[str, str]]:
    """(title, last log lines) per attachment, for a failing test's report."""
    sections = []
    for attachment in attachments:
        try:
            text, state = attachment.logs(tail=REPORT_LOG_LINES), attachment.status
        except Exception as exc:  # noqa: BLE001 - reporting must not mask the failure
            text, state = str(exc), "unknown"
        sections.append((f"netbed attachment on {attachment.host.name}: {attachment.name} ({attachment.image}, "
                         f"{state})", text))
    return sections
