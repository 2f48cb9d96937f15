"""NetnsTestbed: the three hosts as network namespaces on this machine, without Docker.

The same agents as the containers run (``python3 -m netbed_agent --role client|router|server``),
each as a process inside its own network namespace, listening on that namespace's loopback.
The harness reaches an agent through a TCP connection opened from inside the namespace
(``setns`` on the calling thread, see netbed_testkit.namespaces): nothing is added to the
caller's namespace, and no control link exists that test traffic could take.

    client  cr ======= rb  router  ra ======= sr  server
    10.77.0.10      10.77.0.2 | 10.77.1.2      10.77.1.10

The addressing is the default testbed's (index 0): each namespace is its own network, so two
netns testbeds on one machine never collide (their namespace names carry the process id).

The router agent probes the kernel and picks its backend as in the router container: the
kernel backend where ``sch_netem`` loads (Debian's, Ubuntu's kernels; the test VM, vm/), the
userspace engine elsewhere.  ``backend`` forces one (``NETBED_BACKEND``).

It offers what the pytest plugin's fixtures and the suites use of ``Testbed``: ``client``,
``router``, ``server``, ``hosts``, ``host(name)``, ``addresses()``, ``topology``, ``status()``,
``wait_ready()``, ``close_connections()``, and ``with NetnsTestbed() as tb:``.  What only Docker
has (containers, images, restarts, compose) is not there: ``containers()`` raises
DockerOnly naming what was asked.  Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for ``setns``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from netbed_core import subnets
from netbed_testkit import topology as netns_topology
from netbed_testkit.namespaces import CommandError, inside

from .agent import AgentConnection
from .errors import AgentConnectionError, NetbedError, NotReady
from .host import Host, Router
from .testbed import _counter_availability
from .three_hosts import SERVICES, ThreeHosts
from .topology import DEFAULT_INSTANCE, Topology, check_instance_name

#: The agents' control port, inside each namespace (every namespace has its own port space).
CONTROL_PORT = 7000
#: How long the agents may take to answer after they were started, seconds (a VM under
#: software emulation starts a Python process in about 2 s).
READY_TIMEOUT_S = 60.0
#: How long an agent may take to exit after SIGTERM before it is killed, seconds.
STOP_TIMEOUT_S = 5.0


class DockerOnly(NetbedError):
    """Something only the Docker testbed has (containers, images, compose) was asked of a
    netns testbed."""


def why_unavailable() -> str | None:
    """Why a netns testbed cannot run here (None: it can): root, ``ip netns``."""
    if os.geteuid() != 0:
        return "the netns testbed needs root (it creates network namespaces)"
    if shutil.which("ip") is None:
        return "the netns testbed needs iproute2's `ip`"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    return None


class NamespaceConnection(AgentConnection):
    """An agent connection whose socket is opened inside network namespace ``namespace``
    (also on every reconnect); once opened, any thread can use it."""

    def __init__(self, namespace: str, name: str, host: str, port: int, token: str | None) -> None:
        self.namespace = namespace
        super().__init__(name, host, port, token)

    def _open(self) -> None:
        try:
            with inside(self.namespace):
                super()._open()
        except FileNotFoundError as exc:  # /run/netns/NAME: the testbed was taken down
            raise AgentConnectionError(f"the {self.name} agent's namespace {self.namespace} is gone: {exc}") from exc


class NetnsTestbed(ThreeHosts):
    """One netns testbed: three namespaces, three agent processes, started by ``up`` and
    removed by ``down`` (also after a failed start).

    instance: a name for messages and for the namespaces (default $NETBED_INSTANCE or
    "netbed").  backend: "auto", "kernel" or "userspace" (the router's NETBED_BACKEND;
    default: $NETBED_BACKEND or "auto").  log_dir: where the agents' logs go (default: a
    temporary directory, removed by ``down``).
    """

    __test__ = False  # not a pytest test class
    kind = "netns"

    def __init__(self, instance: str | None = None, *, backend: str | None = None,
                 log_dir: Path | None = None) -> None:
        self.instance = check_instance_name(instance or (os.environ.get("NETBED_INSTANCE") or DEFAULT_INSTANCE))
        self.backend = backend or os.environ.get("NETBED_BACKEND", "auto")
        if self.backend not in ("auto", "kernel", "userspace"):
            raise NetbedError(f"backend {self.backend!r}: use auto, kernel or userspace")
        # Namespace names: the instance and our process id, so two sessions never meet.
        self.namespaces = netns_topology.Topology(f"nb-{self.instance}-{os.getpid()}-")
        self.topology = Topology(self.instance, 0, agent_token=secrets.token_hex(16))
        self._given_log_dir = log_dir
        self.log_dir: Path | None = None
        self._agents: dict[str, subprocess.Popen[bytes]] = {}
        self._hosts: dict[str, Host] = {}
        self.started_here = False
        self.keep = False

    @property
    def shared_dir(self) -> str:
        """A directory client and server both see (all namespaces share this machine's files):
        a path for an AF_UNIX socket that one binds and the other connects to."""
        if self.log_dir is None:
            raise NetbedError(f"netns testbed '{self.instance}' is not up")
        return str(self.log_dir / "shared")

    def namespace(self, name: str) -> str:
        """The network namespace of host ``name`` (``ip netns exec NAME ...`` enters it)."""
        return {"client": self.namespaces.client, "router": self.namespaces.router,
                "server": self.namespaces.server}[name]

    # -- lifecycle -----------------------------------------------------
    def is_running(self) -> bool:
        return len(self._agents) == len(SERVICES) and all(p.poll() is None for p in self._agents.values())

    def up(self) -> None:
        """Create the namespaces, start the agents, wait until each answers.  A failed start
        removes what it created."""
        why = why_unavailable()
        if why:
            raise NetbedError(why)
        self.started_here = True
        try:
            self.log_dir = self._given_log_dir or Path(tempfile.mkdtemp(prefix=f"netbed-{self.instance}-"))
            self.log_dir.mkdir(parents=True, exist_ok=True)
            (self.log_dir / "shared").mkdir(exist_ok=True)
            netns_topology.create(self.namespaces)
            for name in SERVICES:
                self._agents[name] = self._start_agent(name)
            self.wait_ready()
        except BaseException:
            self.down()
            raise
        print(f"netbed: netns testbed '{self.instance}' is up (namespaces {', '.join(self.namespaces.namespaces)}; "
              f"router backend {self.router.impair_status()['backend']})", file=sys.stderr, flush=True)

    def _agent_env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETBED_")}
        env.update(
            PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
            NETBED_ROLE=name, NETBED_CONTROL_PORT=str(CONTROL_PORT), NETBED_ROUTES="",
            NETBED_AGENT_TOKEN=self.topology.agent_token,
            NETBED_AGENT_ADDRESS_FILE=str(self._log_path(name).with_suffix(".address")),
            NETBED_CLIENT_NET4=subnets.CLIENT_NET4, NETBED_SERVER_NET4=subnets.SERVER_NET4,
            NETBED_CLIENT_NET6=subnets.CLIENT_NET6, NETBED_SERVER_NET6=subnets.SERVER_NET6,
        )
        if name == "router":
            env["NETBED_BACKEND"] = self.backend
        # The agents import what this interpreter imports: the checkout (an editable install)
        # or the VM's copy ($PYTHONPATH, kept above).
        return env

    def _log_path(self, name: str) -> Path:
        assert self.log_dir is not None
        return self.log_dir / f"{name}-agent.log"

    def _start_agent(self, name: str) -> subprocess.Popen[bytes]:
        with open(self._log_path(name), "wb") as log:  # the child keeps its own descriptor
            # --no-netinit: the namespaces' routes are the topology's; --bind: the namespace's
            # loopback is the only way in (there is no control network to guard).
            return subprocess.Popen(
                ["ip", "netns", "exec", self.namespace(name), sys.executable, "-m", "netbed_agent",
                 "--role", name, "--bind", "127.0.0.1", "--no-netinit"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._agent_env(name),
                start_new_session=True,  # a Ctrl-C of the session reaches us, and we stop the agents
            )

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines of host ``name``'s agent log."""
        try:
            text = self._log_path(name).read_text(errors="replace")
        except (OSError, AssertionError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every agent answers a ping; on timeout or exit name the host and show its log."""
        deadline = time.monotonic() + timeout
        for name in SERVICES:
            while name not in self._hosts:
                proc = self._agents.get(name)
                if proc is None or proc.poll() is not None:
                    code = None if proc is None else proc.returncode
                    tail = self.log_tail(name)
                    # The agent's last ERROR line in the first line of the message: it says why.
                    errors = [line.split(" ERROR ", 1)[1] for line in tail.splitlines() if " ERROR " in line]
                    why = f": {errors[-1].strip()}" if errors else ""
                    raise NotReady(f"the {name} agent of netns testbed '{self.instance}' is not running "
                                   f"(exit {code}){why}\n--- last log lines of {name} ---\n{tail}")
                try:
                    host = self._connect(name)
                    host.ping()
                    self._hosts[name] = host
                except AgentConnectionError as exc:
                    if time.monotonic() > deadline:
                        raise NotReady(f"the {name} agent of netns testbed '{self.instance}' did not answer within "
                                       f"{timeout:g} s: {exc}\n--- last log lines of {name} ---\n"
                                       f"{self.log_tail(name)}") from None
                    time.sleep(0.05)

    def _connect(self, name: str) -> Host:
        conn = NamespaceConnection(self.namespace(name), name, "127.0.0.1", CONTROL_PORT, self.topology.agent_token)
        addrs = self.topology.addresses()[name]
        cls = Router if name == "router" else Host
        return cls(name, conn, addrs["ipv4"], addrs["ipv6"])

    def down(self) -> None:
        """Stop the agents (SIGTERM, then SIGKILL), delete the namespaces; idempotent."""
        self.close_connections()
        try:
            for name, proc in list(self._agents.items()):
                if proc.poll() is None:
                    proc.terminate()  # our own child, by its handle
                    try:
                        proc.wait(timeout=STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                del self._agents[name]
        finally:
            try:
                netns_topology.delete(self.namespaces)
            except CommandError as exc:  # delete() does not check; kept for a changed helper
                print(f"netbed: {exc}", file=sys.stderr)
            if self._given_log_dir is None and self.log_dir is not None:
                shutil.rmtree(self.log_dir, ignore_errors=True)
                self.log_dir = None

    def __enter__(self) -> NetnsTestbed:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- hosts ---------------------------------------------------------
    def addresses(self) -> dict[str, dict[str, str]]:
        return self.topology.addresses()

    def containers(self) -> dict[str, Any]:
        raise DockerOnly(f"netns testbed '{self.instance}' has no containers (its hosts are network namespaces)")

    def status(self) -> dict[str, Any]:
        """What `netbed status` shows, for namespaces: hosts, addresses, agents, router counters."""
        report: dict[str, Any] = {"instance": self.instance, "hosts_kind": "netns", "running": self.is_running(),
                                  "hosts": {}}
        for name in SERVICES:
            proc = self._agents.get(name)
            entry: dict[str, Any] = {"namespace": self.namespace(name),
                                     "state": "running" if proc is not None and proc.poll() is None else "missing",
                                     **self.topology.addresses()[name]}
            if name in self._hosts:
                try:
                    entry["agent"] = "answering" if self._hosts[name].ping() else "not answering"
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
