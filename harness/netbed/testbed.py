"""Testbed: bring the three hosts up, find them, tear them down.

A context manager, usable without pytest:

    with Testbed() as tb:          # up (unless already running), wait for health
        tb.client.socket(...)
                                   # down on exit, if this object brought it up
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

import docker
import tenacity

from netbed_core.direction_stats import COUNTERS, DirectionStats

from . import engine, images
from .agent import AgentConnection
from .compose import Compose
from .errors import AgentConnectionError, NetbedError, NotReady, TestbedNotRunning
from .host import Host, Router
from .topology import DEFAULT_INSTANCE, Topology, check_instance_name, choose_index, index_from_env

SERVICES = ("client", "router", "server")
CONTROL_PORT = "7000/tcp"
#: How long hosts may take to answer after `up`, seconds.
READY_TIMEOUT_S = 60.0


def up_args(build: bool = True) -> list[str]:
    """`compose up` arguments: detached, waiting for every health check, orphans removed."""
    args = ["up", "--detach", "--wait", "--wait-timeout", str(int(READY_TIMEOUT_S)), "--remove-orphans"]
    return [*args, "--build"] if build else args


#: `compose down` arguments: containers, networks and volumes, without a long stop grace.
DOWN_ARGS = ["down", "--volumes", "--remove-orphans", "--timeout", "2"]


def _progress(message: str) -> None:
    print(f"netbed: {message}", file=sys.stderr, flush=True)


class Testbed:
    """One testbed instance: client, router and server on Docker Compose."""

    __test__ = False  # not a pytest test class

    def __init__(self, instance: str | None = None, client: docker.DockerClient | None = None,
                 keep: bool = False) -> None:
        self.instance = check_instance_name(instance or os.environ.get("NETBED_INSTANCE", DEFAULT_INSTANCE))
        self.docker = client or engine.connect()
        self.keep = keep
        self.started_here = False
        self._topology: Topology | None = None
        self._hosts: dict[str, Host] = {}

    # -- description ---------------------------------------------------
    @property
    def topology(self) -> Topology:
        if self._topology is None:
            self._topology = Topology(self.instance, self._find_index())
        return self._topology

    def _find_index(self) -> int:
        """The running instance's subnet index, or a free one for a new instance."""
        pinned = index_from_env(dict(os.environ))
        if pinned is not None:
            return pinned
        in_use: list[str] = []
        for net in self.docker.networks.list():
            labels = net.attrs.get("Labels") or {}
            subnets = [c.get("Subnet") for c in (net.attrs.get("IPAM") or {}).get("Config") or []]
            if labels.get(engine.LABEL_INSTANCE) == self.instance:
                for subnet in subnets:
                    if subnet and subnet.startswith("10.77."):
                        third = int(ipaddress.ip_network(subnet).network_address.packed[2])
                        return third // 2
                continue
            in_use.extend(s for s in subnets if s)
        return choose_index(self.instance, in_use, preferred=0 if self.instance == DEFAULT_INSTANCE else 1)

    def compose(self) -> Compose:
        return Compose(self.instance, self.topology.compose_env())

    # -- lifecycle -----------------------------------------------------
    def containers(self) -> dict[str, Any]:
        found = {}
        for container in self.docker.containers.list(all=True, filters=engine.instance_filter(self.instance)):
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
        # Compose is idempotent: on a running testbed this rebuilds what
        # changed and recreates only those containers.
        was_running = self.is_running()
        base, why = images.choose_base_image(self.docker)
        _progress(f"base image {base} ({why})")
        env_extra = {"NETBED_BASE_IMAGE": base}
        compose = self.compose()
        compose.env.update(env_extra)
        args = up_args(build)
        verb = "updating running" if was_running else "starting"
        _progress(f"{verb} testbed '{self.instance}' (subnets {self.topology.client_side.net4}, "
                  f"{self.topology.server_side.net4})")
        self.started_here = not was_running
        try:
            compose.run(args, stream=True)
            self.wait_ready()
        except BaseException:
            if self.started_here and not self.keep:
                self.down()
            raise
        _progress(f"testbed '{self.instance}' is up")

    def down(self) -> None:
        """Stop and remove the hosts, networks and volumes; idempotent."""
        self.close_connections()
        try:
            self.compose().run(DOWN_ARGS)
        finally:
            # Belt and braces: whatever compose missed (a crashed run, a
            # renamed file) is found by label.
            engine.remove_by_label(self.docker, self.instance)
        self._topology = None

    def __enter__(self) -> Testbed:
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

    def _connect(self, name: str, container: Any) -> Host:
        conn = AgentConnection(name, "127.0.0.1", self._control_port(container))
        addrs = self.topology.addresses()[name]
        cls = Router if name == "router" else Host
        return cls(name, conn, addrs["ipv4"], addrs["ipv6"], container=container)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every agent answers a ping; on timeout name the host and show its log."""
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
                    retry=tenacity.retry_if_exception_type((AgentConnectionError, NetbedError)),
                    reraise=True,
                ):
                    with attempt:
                        host = self._hosts.get(name) or self._connect(name, container)
                        host.ping()
                        self._hosts[name] = host
            except (AgentConnectionError, NetbedError) as exc:
                container.reload()
                logs = container.logs(tail=20).decode("utf-8", "replace")
                raise NotReady(
                    f"{name} ({container.name}, status {container.status}) did not answer within "
                    f"{timeout:g} s: {exc}\n--- last log lines of {name} ---\n{logs}"
                ) from None

    def host(self, name: str) -> Host:
        if name not in self._hosts:
            self.wait_ready()
        return self._hosts[name]

    @property
    def client(self) -> Host:
        return self.host("client")

    @property
    def server(self) -> Host:
        return self.host("server")

    @property
    def router(self) -> Router:
        router = self.host("router")
        assert isinstance(router, Router)
        return router

    @property
    def hosts(self) -> dict[str, Host]:
        return {name: self.host(name) for name in SERVICES}

    def addresses(self) -> dict[str, dict[str, str]]:
        return self.topology.addresses()

    def close_connections(self) -> None:
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()

    def status(self) -> dict[str, Any]:
        """What `netbed status` prints: containers, addresses, agents, router counters."""
        containers = self.containers()
        report: dict[str, Any] = {"instance": self.instance, "running": self.is_running(), "hosts": {}}
        if not containers:
            return report
        report["subnets"] = {"client_side": self.topology.client_side.net4 + " " + self.topology.client_side.net6,
                             "server_side": self.topology.server_side.net4 + " " + self.topology.server_side.net6}
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
