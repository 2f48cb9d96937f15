"""Fixtures of the namespace tests: the topology, and the router's real agent inside it
(router_agent.py).

Skipped unless root with ``ip netns``, iptables and NFQUEUE support.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from router_agent import RouterAgent

from netbed_testkit.namespaces import run
from netbed_testkit.topology import Topology, built


def _why_skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root (creates network namespaces)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    r = run("ip", "netns", "list", check=False)
    if r.returncode != 0:
        return f"ip netns unavailable: {r.stderr.strip()}"
    return None


_SKIP = _why_skip()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if _SKIP is not None and here in Path(item.path).parents:
            item.add_marker(pytest.mark.skip(reason=_SKIP))


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with built(Topology.for_process("nbt")) as t:
        probe = run("ip", "netns", "exec", t.router, "iptables", "-w", "-A", "FORWARD", "-p", "udp", "--dport", "1",
                    "-j", "NFQUEUE", "--queue-num", "7", check=False)
        if probe.returncode != 0:
            pytest.skip(f"iptables NFQUEUE unavailable: {probe.stderr.strip()}")
        run("ip", "netns", "exec", t.router, "iptables", "-w", "-F", "FORWARD")
        yield t


@pytest.fixture()
def router(topo: Topology, tmp_path: Path) -> Iterator[RouterAgent]:
    agent = RouterAgent(topo, tmp_path / "router-agent.log")
    try:
        yield agent
    finally:
        agent.close()
