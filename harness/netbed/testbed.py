"""Testbed: bring the three hosts up, find them, tear them down.

A context manager, usable without pytest (the pytest plugin's session fixture is
exactly `with Testbed(...) as tb: yield tb`):

    with Testbed() as tb:          # reuse a running testbed, or start one and wait for health
        tb.client.socket(...)
                                   # down on exit, if this object started it

Starting a new testbed runs three phases: build the images (outside any lock,
builds are slow), then under the machine-wide subnet lock choose a free subnet
pair and create the networks (`compose up --no-start`), then the setup commands
(by default `compose up --detach --wait`).
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import docker
import tenacity

from netbed_core.direction_stats import COUNTERS, DirectionStats

from . import attach, docker_api, images
from .agent import AgentConnection
from .compose import COMPOSE_FILE, Compose
from .errors import AgentConnectionError, ComposeError, NetbedError, NotReady, TestbedNotRunning
from .host import Host, Router
from .subnet_lock import subnet_lock
from .three_hosts import SERVICES, ThreeHosts
from .topology import DEFAULT_INSTANCE, Topology, check_instance_name, choose_index, index_from_env


class StaleImageWarning(UserWarning):
    """A reused testbed runs images built from other sources than this checkout."""
CONTROL_PORT = "7000/tcp"
#: How long hosts may take to answer after `up`, seconds.
READY_TIMEOUT_S = 60.0
#: Errors that mean "not answering yet" while a host starts; anything else is permanent.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (AgentConnectionError, ConnectionRefusedError,
                                                     ConnectionResetError)
#: How many subnet pairs to try when the engine answers "Pool overlaps" (another user's network).
POOL_ATTEMPTS = 5


def up_args(build: bool = True) -> list[str]:
    """`compose up` arguments: detached, waiting for every health check, orphans removed."""
    args = ["up", "--detach", "--wait", "--wait-timeout", str(int(READY_TIMEOUT_S)), "--remove-orphans"]
    return [*args, "--build"] if build else args


#: `compose up` arguments that create the networks (and containers) without starting anything.
CREATE_ARGS = ["up", "--no-start", "--remove-orphans"]
#: `compose down` arguments: containers, networks and volumes, without a long stop grace.
DOWN_ARGS = ["down", "--volumes", "--remove-orphans", "--timeout", "2"]


def _progress(message: str) -> None:
    print(f"netbed: {message}", file=sys.stderr, flush=True)


def _is_pool_overlap(exc: ComposeError) -> bool:
    return "Pool overlaps" in str(exc) or "overlaps with other one" in str(exc)


def agent_token(container: Any) -> str | None:
    """The NETBED_AGENT_TOKEN a container was started with (its Config.Env)."""
    for item in (container.attrs.get("Config") or {}).get("Env") or []:
        key, _, value = item.partition("=")
        if key == "NETBED_AGENT_TOKEN":
            return str(value)
    return None


class Testbed(ThreeHosts):
    """One testbed instance: client, router and server on Docker Compose.

    owner: the session label written to `io.netbed.owner` on a testbed this
    object starts ("" = the user's: never reaped).  compose_files,
    compose_command: as pytest-docker's fixtures, but argument lists.  setup:
    compose argument lists run to start a new testbed after its networks exist
    (default `[up_args(build=False)]`); cleanup: those run by `down` (default
    `[DOWN_ARGS]`), after which whatever carries the instance's labels is removed.
    """

    __test__ = False  # not a pytest test class
    kind = "docker"
    #: A directory client and server both see (the volume compose.yaml mounts in both): a path
    #: for an AF_UNIX socket that one binds and the other connects to.
    shared_dir = "/run/netbed-unix"

    def __init__(self, instance: str | None = None, client: docker.DockerClient | None = None,
                 keep: bool = False, *, owner: str = "", compose_files: Sequence[Path] = (COMPOSE_FILE,),
                 compose_command: Sequence[str] | None = None, setup: Sequence[Sequence[str]] | None = None,
                 cleanup: Sequence[Sequence[str]] | None = None) -> None:
        self.instance = check_instance_name(instance or (os.environ.get("NETBED_INSTANCE") or DEFAULT_INSTANCE))
        self.docker = client or docker_api.connect()
        self.keep = keep
        self.owner = owner
        self.compose_files = list(compose_files)
        self.compose_command = list(compose_command) if compose_command else None
        self.setup = [list(a) for a in setup] if setup is not None else [up_args(build=False)]
        self.cleanup = [list(a) for a in cleanup] if cleanup is not None else [DOWN_ARGS]
        self.started_here = False
        self.sleep: Callable[[float], None] = time.sleep
        self._topology: Topology | None = None
        self._hosts: dict[str, Host] = {}
        self._env_extra: dict[str, str] = {}
        self._sources: str | None = None

    # -- description ---------------------------------------------------
    @property
    def topology(self) -> Topology:
        if self._topology is None:
            index = self._find_index()
            # A running testbed keeps its token (a new one would recreate every container).
            token = self._running_agent_token()
            self._topology = (Topology(self.instance, index, agent_token=token) if token
                              else Topology(self.instance, index))
        return self._topology

    def _find_index(self, exclude: Sequence[int] = ()) -> int:
        """The running instance's subnet index, or a free one (not in `exclude`) for a new instance."""
        pinned = index_from_env(dict(os.environ))
        if pinned is not None:
            return pinned
        in_use: list[str] = []
        for net in self.docker.networks.list():
            labels = net.attrs.get("Labels") or {}
            subnets = [c.get("Subnet") for c in (net.attrs.get("IPAM") or {}).get("Config") or []]
            if labels.get(docker_api.LABEL_INSTANCE) == self.instance:
                for subnet in subnets:
                    if subnet and subnet.startswith("10.77."):
                        third = int(ipaddress.ip_network(subnet).network_address.packed[2])
                        return third // 2
                continue
            in_use.extend(s for s in subnets if s)
        for index in exclude:
            in_use.extend((Topology(self.instance, index).client_side.net4,
                           Topology(self.instance, index).server_side.net4))
        return choose_index(self.instance, in_use, preferred=0 if self.instance == DEFAULT_INSTANCE else 1)

    def compose(self) -> Compose:
        env = {**self.topology.compose_env(), "NETBED_OWNER": self.owner, "NETBED_SOURCES": self.sources_digest(),
               **self._env_extra}
        return Compose(self.instance, env, self.compose_files, self.compose_command)

    def sources_digest(self) -> str:
        """The digest of the sources this checkout builds the images from (images.sources_digest)."""
        if self._sources is None:
            self._sources = images.sources_digest(self.compose_files[0].parent)
        return self._sources

    def stale_images(self) -> dict[str, str]:
        """{service: digest it was built from} for the running containers whose images were not
        built from this checkout's sources; empty when all are current."""
        return images.stale_services(self.containers(), self.sources_digest())

    def warn_if_stale(self) -> None:
        """Say so when a reused testbed runs images built from other sources (an older
        checkout): its agents may lack operations this harness uses. `make up` rebuilds."""
        stale = self.stale_images()
        if stale:
            hosts = ", ".join(f"{name} (built from {digest})" for name, digest in sorted(stale.items()))
            message = (f"testbed '{self.instance}' runs images built from other sources than this checkout "
                       f"({self.sources_digest()}): {hosts}; run `make up` (or `netbed up`) to rebuild them")
            _progress(f"warning: {message}")
            warnings.warn(message, StaleImageWarning, stacklevel=2)

    # -- lifecycle -----------------------------------------------------
    def containers(self) -> dict[str, Any]:
        found = {}
        flt = docker_api.instance_filter(self.instance)
        for container in self.docker.containers.list(all=True, filters=flt, ignore_removed=True):
            service = container.labels.get("com.docker.compose.service")
            if service in SERVICES:
                found[service] = container
        return found

    def is_running(self) -> bool:
        found = self.containers()
        return len(found) == len(SERVICES) and all(c.status == "running" for c in found.values())

    def up(self, build: bool = True) -> None:
        """Build the images if needed, start the hosts, wait until every agent answers.

        Idempotent: on a running testbed it rebuilds and recreates only what
        changed.  A failed start tears down what it created (unless keep=True).
        """
        was_running = self.is_running()
        self._choose_base_image()
        self.started_here = not was_running
        try:
            if was_running:
                _progress(f"updating running testbed '{self.instance}'")
                # Compose is idempotent: this rebuilds what changed and recreates only those containers.
                self.compose().run(up_args(build), stream=True)
            else:
                if build:
                    self.build()
                self.create_networks()
                for args in self.setup:
                    self.compose().run(args, stream=True)
            self.wait_ready()
        except ComposeError as exc:
            report = self._failed_hosts_report()  # before down() removes the containers and their logs
            if self.started_here and not self.keep:
                self.down()
            if report:
                raise ComposeError(f"{exc}{report}") from None
            raise
        except BaseException:
            if self.started_here and not self.keep:
                self.down()
            raise
        _progress(f"testbed '{self.instance}' is up")

    def _failed_hosts_report(self) -> str:
        """For each host that is not running and healthy: its last ERROR log line (appended to
        the error's first line, so a one-line error names the reason) and its last log lines."""
        try:
            found = self.containers()
        except Exception:  # noqa: BLE001 - a report on top of an error must not replace it
            return ""
        reasons: list[str] = []
        tails: list[str] = []
        for name in SERVICES:
            container = found.get(name)
            if container is None:
                continue
            container.reload()
            state = container.attrs.get("State") or {}
            health = (state.get("Health") or {}).get("Status")
            if state.get("Running") and not state.get("Restarting") and health in (None, "healthy"):
                continue
            lines = [line for line in container.logs(tail=40).decode("utf-8", "replace").splitlines() if line.strip()]
            errors = [line.split(" ERROR ", 1)[1] for line in lines if " ERROR " in line]
            reasons.append(f"{name}: {(errors or lines or ['(no log)'])[-1].strip()}")
            tails.append(f"--- last log lines of {name} ---\n" + "\n".join(lines[-20:]))
        if not reasons:
            return ""
        return "; " + "; ".join(reasons) + "\n" + "\n".join(tails)

    def _choose_base_image(self) -> None:
        if "NETBED_BASE_IMAGE" not in self._env_extra:
            base, why = images.choose_base_image(self.docker)
            _progress(f"base image {base} ({why})")
            self._env_extra["NETBED_BASE_IMAGE"] = base

    def build(self) -> None:
        """Build (or bring up to date) the host images: Docker's build cache rebuilds
        exactly what a changed checkout changed.  No lock: builds are slow and share nothing."""
        self._choose_base_image()
        _progress(f"building the images of testbed '{self.instance}'")
        self.compose().run(["build"], stream=True)

    def create_networks(self) -> Topology:
        """Choose a free subnet pair and create the networks (and containers, not started).

        Under the machine-wide subnet lock, so two testbeds starting at once
        never pick the same pair; an overlap with a network created outside
        netbed ("Pool overlaps") moves on to the next pair.
        """
        tried: list[int] = []
        with subnet_lock():
            for _attempt in range(POOL_ATTEMPTS):
                self._topology = Topology(self.instance, self._find_index(exclude=tried))
                _progress(f"creating testbed '{self.instance}' (subnets {self.topology.client_side.net4}, "
                          f"{self.topology.server_side.net4})")
                try:
                    self.compose().run(CREATE_ARGS, stream=True)
                    return self.topology
                except ComposeError as exc:
                    if not _is_pool_overlap(exc) or index_from_env(dict(os.environ)) is not None:
                        raise
                    tried.append(self.topology.index)
                    docker_api.remove_by_label(self.docker, self.instance)
                    self._topology = None
        raise ComposeError(f"testbed '{self.instance}': subnets {tried} all overlap existing networks; "
                           "remove unused networks (`docker network prune`) or set NETBED_CLIENT_NET4")

    def down(self) -> None:
        """Stop and remove the hosts, networks and volumes; idempotent."""
        self.close_connections()
        try:
            attach.remove_attachments(self.docker, self.instance)  # before the hosts whose namespaces they share
            for args in self.cleanup:
                self.compose().run(args)
        finally:
            # Belt and braces: whatever compose missed (a crashed run, a
            # renamed file) is found by label.
            docker_api.remove_by_label(self.docker, self.instance)
        self._topology = None

    def __enter__(self) -> Testbed:
        """Reuse a running testbed as it is; otherwise start one (removed again on exit)."""
        if self.is_running():
            self.started_here = False
            _progress(f"reusing running testbed '{self.instance}' (left running at the end)")
            self.warn_if_stale()
            self.wait_ready()
        else:
            self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started_here and not self.keep:
            self.down()
        else:
            self.close_connections()

    # -- hosts ---------------------------------------------------------
    def _control_port(self, container: Any) -> int:
        container.reload()
        bindings = (container.ports or {}).get(CONTROL_PORT) or []
        for binding in bindings:
            if binding.get("HostIp") in ("127.0.0.1", ""):
                return int(binding["HostPort"])
        raise TestbedNotRunning(f"{container.name} publishes no control port; recreate with `make down up`")

    def _running_agent_token(self) -> str | None:
        for container in self.containers().values():
            token = agent_token(container)
            if token:
                return token
        return None

    def _connect(self, name: str, container: Any) -> Host:
        def endpoint() -> tuple[str, int, str | None]:
            """Where the agent is now: asked again on reconnect (a restart may move the port)."""
            container.reload()
            if container.status != "running":
                raise AgentConnectionError(
                    f"the {name} agent's container {container.name} is {container.status}; "
                    "`make up` (or `docker start`) brings it back")
            token = agent_token(container)
            if not token:
                raise TestbedNotRunning(f"{container.name} has no NETBED_AGENT_TOKEN; recreate with `make down up`")
            return "127.0.0.1", self._control_port(container), token

        host, port, token = endpoint()
        conn = AgentConnection(name, host, port, token, resolve=endpoint)
        addrs = self.topology.addresses()[name]
        cls = Router if name == "router" else Host
        return cls(name, conn, addrs["ipv4"], addrs["ipv6"], container=container)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every agent answers a ping; on timeout name the host and show its log.

        Only a refused or reset connection (the agent is still starting) is
        retried; any other error (a wrong token, a broken agent) fails at once
        with its own message.
        """
        containers = self.containers()
        missing = [s for s in SERVICES if s not in containers]
        if missing:
            raise TestbedNotRunning(f"testbed '{self.instance}' has no {', '.join(missing)}: run `make up`")
        for name in SERVICES:
            container = containers[name]
            try:
                for attempt in tenacity.Retrying(
                    stop=tenacity.stop_after_delay(timeout),
                    wait=tenacity.wait_exponential(multiplier=0.05, max=1.0),
                    retry=tenacity.retry_if_exception_type(TRANSIENT_ERRORS),
                    sleep=self.sleep,
                    reraise=True,
                ):
                    with attempt:
                        host = self._hosts.get(name) or self._connect(name, container)
                        host.ping()
                        self._hosts[name] = host
                        if isinstance(host, Router):
                            host.peers = self._hosts  # a scenario's host faults act on these
            except TRANSIENT_ERRORS as exc:
                container.reload()
                logs = container.logs(tail=20).decode("utf-8", "replace")
                raise NotReady(
                    f"{name} ({container.name}, status {container.status}) did not answer within "
                    f"{timeout:g} s: {exc}\n--- last log lines of {name} ---\n{logs}"
                ) from None
            except NetbedError as exc:
                raise NotReady(f"{name} ({container.name}) is not usable: {exc}") from exc

    def addresses(self) -> dict[str, dict[str, str]]:
        return self.topology.addresses()

    def status(self) -> dict[str, Any]:
        """What `netbed status` prints: containers, addresses, agents, router counters."""
        containers = self.containers()
        report: dict[str, Any] = {"instance": self.instance, "running": self.is_running(), "hosts": {}}
        if not containers:
            return report
        report["subnets"] = {"client_side": self.topology.client_side.net4 + " " + self.topology.client_side.net6,
                             "server_side": self.topology.server_side.net4 + " " + self.topology.server_side.net6}
        report["images"] = {"sources": self.sources_digest(),
                            "stale": images.stale_services(containers, self.sources_digest())}
        report["attachments"] = attach.describe(self.docker, self.instance)
        for name in SERVICES:
            container = containers.get(name)
            entry: dict[str, Any] = {"container": container.name if container else None,
                                     "state": container.status if container else "missing",
                                     **self.topology.addresses()[name]}
            if container is not None and container.status == "running":
                try:
                    host = self._hosts.get(name) or self._connect(name, container)
                    self._hosts[name] = host
                    entry["agent"] = "answering" if host.ping() else "not answering"
                    entry["control_port"] = host.control_port
                except NetbedError as exc:
                    entry["agent"] = f"not answering: {exc}"
            report["hosts"][name] = entry
        router = self._hosts.get("router")
        if isinstance(router, Router):
            try:
                counters = router.counters()
                report["router"] = {"ipv4_forwarded": counters["ipv4_forwarded"],
                                    "ipv6_forwarded": counters["ipv6_forwarded"]}
                status = router.impair_status()
                status["counters"] = _counter_availability(status)
                report["impairment"] = status
            except NetbedError as exc:
                report["router"] = {"error": str(exc)}
        return report


def _counter_availability(status: dict[str, Any]) -> dict[str, Any]:
    """Which router counters the backend measures (with their values per direction) and which
    are not available on it, from an `impair_status` reply (what `netbed status` shows)."""
    counters = {d: DirectionStats.from_dict(e.get("stats") or {}) for d, e in status.get("directions", {}).items()}
    # A router from before "measured" existed: what it sent as a number is measured.
    measured = set(status["measured"]) if "measured" in status else \
        set().union(*(c.measured for c in counters.values()))
    return {
        "measured": [c for c in COUNTERS if c in measured],
        "not_available": [c for c in COUNTERS if c not in measured],
        "values": {d: {k: v for k, v in c.counters().items() if k in measured} for d, c in counters.items()},
    }
