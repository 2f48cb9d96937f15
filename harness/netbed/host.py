"""Host: one testbed container, reached through its agent."""

from __future__ import annotations

import socket
import threading
from typing import Any

from netbed_core.direction_stats import DirectionStats, total
from netbed_core.netem import Netem

from . import impairment
from .agent import AgentConnection, error_from_reply
from .impairment import Impairment
from .job import Job
from .remote_socket import RemoteSocket, family_name, type_name


class Host:
    """A testbed host: its name, data-plane addresses and agent connection."""

    def __init__(self, name: str, conn: AgentConnection, ipv4: str, ipv6: str,
                 container: Any = None) -> None:
        self.name = name
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.container = container
        self._conn = conn
        self._open: set[RemoteSocket] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.ipv4} {self.ipv6}>"

    @property
    def control_port(self) -> int:
        """The host port (on 127.0.0.1) where this host's agent listens."""
        return self._conn.address[1]

    def address(self, family: int = socket.AF_INET) -> str:
        """This host's data-plane address for `family`."""
        return self.ipv6 if family == socket.AF_INET6 else self.ipv4

    def call(self, op: str, /, **args: Any) -> dict[str, Any]:
        """Send one raw agent request (see docs/agent-protocol.md)."""
        return self._conn.call(op, **{k: v for k, v in args.items() if v is not None})

    def socket(self, family: int | str = socket.AF_INET, type: int | str = socket.SOCK_STREAM,
               proto: int | str = 0) -> RemoteSocket:
        """Open a real socket on this host."""
        result = self.call("socket", family=family_name(family), type=type_name(type), proto=proto)
        sock = RemoteSocket(self, result["fd"], family, type)
        self.track(sock)
        return sock

    def track(self, sock: RemoteSocket) -> None:
        with self._lock:
            self._open.add(sock)

    def untrack(self, sock: RemoteSocket) -> None:
        with self._lock:
            self._open.discard(sock)

    def close_all_sockets(self) -> int:
        """Close every socket the agent holds (the per-test cleanup)."""
        with self._lock:
            for sock in self._open:
                sock.closed = True
            self._open.clear()
        return int(self.call("close_all")["closed"])

    def start(self, op: str, **args: Any) -> Job:
        """Start `op` in the background on the agent; returns a Job to wait on."""
        inner = {k: v for k, v in args.items() if v is not None}
        result = self.call("job_start", op=op, args=inner)
        return Job(self, result["job"], op)

    def ping(self) -> bool:
        return bool(self.call("ping")["pong"])

    def route_get(self, address: str) -> dict[str, Any]:
        """The kernel's route lookup for `address` (sends nothing)."""
        return self.call("route_get", address=address)

    def snmp(self) -> dict[str, dict[str, int]]:
        """Kernel protocol counters (/proc/net/snmp and snmp6), by protocol."""
        counters: dict[str, dict[str, int]] = self.call("snmp")["counters"]
        return counters

    def sysctl(self, name: str) -> str:
        return str(self.call("sysctl", name=name)["value"])

    def info(self) -> dict[str, Any]:
        return self.call("info")

    def exec(self, argv: list[str]) -> tuple[int, str]:
        """Run a command in the container (docker exec); returns (exit code, output)."""
        if self.container is None:
            raise RuntimeError(f"{self.name}: no container handle for exec")
        code, output = self.container.exec_run(argv)
        return int(code), output.decode("utf-8", "replace")

    def close(self) -> None:
        self._conn.close()


class Router(Host):
    """The router host: forwarding counters (and impairments)."""

    def counters(self) -> dict[str, Any]:
        """{"ipv4_forwarded": n, "ipv6_forwarded": n, "interfaces": {name: {...}}}."""
        return self.call("router_counters")

    def reset(self) -> None:
        """Return the router to pristine forwarding (no impairment)."""
        self.call("reset")

    def impair(self, netem: str | Netem, direction: str = "both", match: str | None = None) -> Impairment:
        """Impair forwarded traffic (netem's syntax, e.g. "delay 50ms 5ms loss 1%").

        direction: "both", "to-server" or "to-client"; match: "PROTO[:PORT]"
        (e.g. "udp:5000") to impair only those packets.  Active on return;
        use as a context manager to restore the previous setting on exit.
        """
        return impairment.apply(self, netem, direction, match)

    def clear(self, direction: str = "both") -> None:
        """Pristine forwarding for `direction` (both, to-server, to-client)."""
        self.call("clear", direction=direction)

    def impair_status(self) -> dict[str, Any]:
        """{"backend", "reason", "measured", "directions": {dir: {"impairment", "stats"}}, "engine"}."""
        return self.call("impair_status")

    def impair_counters(self, status: dict[str, Any] | None = None) -> dict[str, DirectionStats]:
        """Per direction, what the router's backend counted since the impairment was applied
        (packets; a counter this backend cannot measure is None, see DirectionStats).
        `status`: an `impair_status()` reply already fetched."""
        status = self.impair_status() if status is None else status
        return {d: DirectionStats.from_dict(entry.get("stats") or {}) for d, entry in status["directions"].items()}

    def impair_totals(self) -> DirectionStats:
        """The router's counters summed over both directions (None: not measured by its backend)."""
        return total(self.impair_counters().values())


__all__ = ["Host", "Job", "Router", "error_from_reply"]
