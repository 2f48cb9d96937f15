"""NetnsTestbed (harness/netbed/netns_testbed.py): the hosts as network namespaces.

Its start and its teardown leave nothing behind (namespaces, agent processes), also after a
failed start; a router backend that cannot run fails the start naming why; the control
connections live inside the namespaces, never in the caller's.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from netbed.errors import NotReady
from netbed.netns_testbed import SERVICES, DockerOnly, NetnsTestbed
from netbed_testkit.namespaces import run


def namespaces() -> set[str]:
    return {line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line.strip()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_up_serves_the_three_hosts_and_down_leaves_nothing() -> None:
    tb = NetnsTestbed("nstest")
    with tb:
        ours = set(tb.namespaces.namespaces)
        assert ours <= namespaces()
        pids = [p.pid for p in tb._agents.values()]
        assert len(pids) == 3 and all(alive(p) for p in pids)
        assert {name: tb.host(name).info()["role"] for name in SERVICES} == {
            "client": "client", "router": "router", "server": "server"}
        # A datagram from client to server crosses the router (it forwards; counters move).
        before = tb.router.counters()["ipv4_forwarded"]
        rx = tb.server.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = rx.bind(("", 0))[1]
        tb.client.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (tb.server.ipv4, port))
        assert rx.recvfrom(10, timeout=5)[0] == b"x"
        assert tb.router.counters()["ipv4_forwarded"] - before == 1
        log_dir = tb.log_dir
        assert log_dir is not None and log_dir.is_dir()
    assert not ours & namespaces()
    assert not any(alive(p) for p in pids)
    assert not log_dir.exists()


def test_the_control_connection_is_not_in_the_callers_namespace() -> None:
    """The agents listen on their namespaces' loopback: port 7000 of ours has nothing of theirs."""
    with NetnsTestbed("nstest") as tb:
        assert tb.client.ping()
        mine = subprocess.run(["ss", "-Hltn", "sport = :7000"], capture_output=True, text=True, check=True).stdout
        inside = run("ip", "netns", "exec", tb.namespace("client"), "ss", "-Hltn", "sport = :7000").stdout
        assert "127.0.0.1:7000" in inside
        assert "127.0.0.1:7000" not in mine


def test_docker_only_operations_say_so() -> None:
    tb = NetnsTestbed("nstest")
    with pytest.raises(DockerOnly, match="no containers"):
        tb.containers()
    with pytest.raises(Exception, match="backend 'nope'"):
        NetnsTestbed("nstest", backend="nope")


def test_a_backend_that_cannot_run_fails_the_start_naming_why_and_leaves_nothing() -> None:
    before = namespaces()
    tb = NetnsTestbed("nstest", backend="kernel")
    try:
        tb.up()
    except NotReady as exc:
        caught = exc
    else:
        tb.down()
        pytest.skip("this kernel has sch_netem: a forced kernel backend runs here")
    first_line = str(caught).splitlines()[0]
    assert "router" in first_line and "sch_netem" in first_line, first_line
    assert namespaces() == before
    assert not tb._agents and tb.log_dir is None
