"""The router's real agent in the topology's router namespace, for the namespace tests.

The agent (``python3 -m netbed_agent --role router``, as the router container runs it) is
started inside the router namespace with the environment compose.yaml gives the router, the
userspace backend forced.  The test process talks to it with the harness's own
``AgentConnection``, over a TCP connection opened from inside the router namespace to its
loopback: nothing is added to the caller's namespace, and parallel runs cannot collide.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from netbed.agent import AgentConnection
from netbed.errors import AgentConnectionError
from netbed_core import subnets
from netbed_testkit.namespaces import inside
from netbed_testkit.topology import Topology

#: The agent's control port inside the router namespace (its own port space).
CONTROL_PORT = 7000
#: How long the agent may take to answer after it was started, seconds.
AGENT_START_S = 20.0


class RouterAgent:
    """The router agent process in the topology's router namespace and a connection to it."""

    def __init__(self, topo: Topology, log_path: Path) -> None:
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            NETBED_ROLE="router",
            NETBED_CONTROL_PORT=str(CONTROL_PORT),
            NETBED_ROUTES="",
            NETBED_CLIENT_NET4=subnets.CLIENT_NET4,
            NETBED_SERVER_NET4=subnets.SERVER_NET4,
            NETBED_CLIENT_NET6=subnets.CLIENT_NET6,
            NETBED_SERVER_NET6=subnets.SERVER_NET6,
            NETBED_BACKEND="userspace",
            NETBED_AGENT_TOKEN=secrets.token_hex(16),
            NETBED_AGENT_ADDRESS_FILE=str(log_path.with_suffix(".address")),
        )
        self.token = env["NETBED_AGENT_TOKEN"]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in _stop()
        # The namespace has no control network: the agent listens on its loopback, and the
        # namespaces' routes and filters stay the topology's (no netinit, no guard).
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", topo.router, sys.executable, "-m", "netbed_agent", "--role", "router",
             "--bind", "127.0.0.1", "--no-netinit"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        try:
            self.conn = self._connect(topo)
        except BaseException:
            self._stop()
            raise

    def _connect(self, topo: Topology) -> AgentConnection:
        deadline = time.monotonic() + AGENT_START_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"router agent exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with inside(topo.router):  # the socket is opened, and stays, in the router netns
                    conn = AgentConnection("router", "127.0.0.1", CONTROL_PORT, token=self.token,
                                           connect_timeout=1.0)
                status = conn.call("impair_status")
            except AgentConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"router agent not answering after {AGENT_START_S:g} s:\n"
                                       f"{self.log_tail()}") from None
                time.sleep(0.05)
                continue
            if status["backend"] != "userspace":
                conn.close()
                raise RuntimeError(f"router agent has no userspace backend: {status['reason']}\n{self.log_tail()}")
            return conn

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def impair(self, direction: str, netem: str, match: str | None = None) -> dict[str, Any]:
        return self.conn.call("impair", direction=direction, netem=netem, match=match)

    def clear(self, direction: str) -> None:
        self.conn.call("clear", direction=direction)

    def stats(self, direction: str) -> dict[str, Any]:
        """The backend's counters for ``direction`` (see netbed_router/stats.py)."""
        stats: dict[str, Any] = self.conn.call("impair_status")["directions"][direction]["stats"]
        return stats

    def _stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()  # our own child, by handle
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            self._log.close()

    def close(self) -> None:
        """Pristine forwarding (the agent removes its NFQUEUE rules), then stop the agent:
        the next test's agent starts from a router namespace without rules."""
        try:
            self.conn.call("reset")
            self.conn.close()
        finally:
            self._stop()
