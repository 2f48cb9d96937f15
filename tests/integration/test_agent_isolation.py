"""The control plane is out of reach of the device under test (issue #12, findings 1, 2, 9).

- agents listen on their control-network address only, so nothing on the data networks
  reaches them and no data-network port is taken;
- a request without the testbed's token runs nothing;
- no packet from a container reaches the Docker host, on any of its networks;
- Docker's embedded DNS answers the testbed's names and forwards any other name only to the
  container's own loopback (never off the machine);
- the harness reconnects after a container restart and fails fast while it is down.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from netbed.errors import AgentConnectionError
from netbed.host import Host, Router
from netbed.testbed import Testbed, agent_token

AGENT_PORT = 7000


def _networks(testbed: Testbed, name: str) -> dict[str, dict]:
    container = testbed.containers()[name]
    container.reload()
    return dict(container.attrs["NetworkSettings"]["Networks"])


def _control(testbed: Testbed, name: str) -> dict:
    return next(v for k, v in _networks(testbed, name).items() if k.endswith("_control"))


@pytest.mark.parametrize("key", ["ipv4", "ipv6", "ipv4_server_side", "ipv6_server_side"])
def test_router_agent_is_not_reachable_on_its_data_addresses(testbed: Testbed, client: Host, key: str) -> None:
    """A client connection to the router's data addresses on the agent port is refused (nothing
    listens there): before, it reached the router's agent."""
    address = testbed.addresses()["router"][key]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = client.socket(family, socket.SOCK_STREAM)
    with pytest.raises(OSError) as info:
        sock.connect((address, AGENT_PORT), timeout=2.0)
    assert info.value.errno == errno.ECONNREFUSED, info.value


@pytest.mark.needs_docker("the agent listens on the control network's address")
@pytest.mark.parametrize("name", ["client", "router", "server"])
def test_agents_listen_on_the_control_address_only(testbed: Testbed, name: str) -> None:
    """The only listener on the agent port is the control address, which is where Docker
    forwards the published port (the harness reaches the agent through it)."""
    code, output = testbed.host(name).exec(["ss", "-Hltn", f"sport = :{AGENT_PORT}"])
    assert code == 0, output
    listeners = [line.split()[3] for line in output.splitlines() if line.strip()]
    assert listeners == [f"{_control(testbed, name)['IPAddress']}:{AGENT_PORT}"]
    assert testbed.host(name).ping()


@pytest.mark.needs_docker("the token is read from the container's environment")
def test_a_request_without_the_token_is_refused(testbed: Testbed) -> None:
    """Through the published port itself: no token, or a wrong one, gets `unauthorized`, and the
    socket it asked for is never opened."""
    port = testbed.client.control_port
    token = agent_token(testbed.containers()["client"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        stream = sock.makefile("rwb")
        for extra in ({}, {"token": "not-the-token"}):
            stream.write(json.dumps({"id": 1, "op": "socket", **extra}).encode() + b"\n")
            stream.flush()
            reply = json.loads(stream.readline())
            assert reply["ok"] is False and reply["error"]["kind"] == "unauthorized"
        stream.write(json.dumps({"id": 2, "op": "close_all", "token": token}).encode() + b"\n")
        stream.flush()
        assert json.loads(stream.readline())["result"] == {"closed": 0}


#: How long a Docker host address may stay tentative (IPv6 duplicate address detection), seconds.
DAD_WAIT_S = 5.0


def _docker_host_addresses(testbed: Testbed) -> list[tuple[str, str]]:
    """(network, address) of the Docker host on every network of the client and server."""
    found = []
    for name in ("client", "server"):
        for net, info in _networks(testbed, name).items():
            for key in ("Gateway", "IPv6Gateway"):
                if info.get(key):
                    found.append((net, info[key]))
    return sorted(set(found))


@pytest.fixture
def host_listeners(testbed: Testbed) -> Iterator[list[tuple[str, socket.socket]]]:
    """A UDP socket of ours on each of the Docker host's testbed addresses (this machine)."""
    listeners = []
    try:
        for net, address in _docker_host_addresses(testbed):
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            # A bridge's IPv6 address stays "tentative" (duplicate address detection) for a
            # second or two after its network is created, and binding it fails meanwhile with
            # EADDRNOTAVAIL; a fresh-clone CI run skipped this test for that. Wait it out.
            deadline = time.monotonic() + DAD_WAIT_S
            while True:
                try:
                    sock.bind((address, 0))
                    break
                except OSError as exc:
                    if exc.errno == errno.EADDRNOTAVAIL and time.monotonic() < deadline:
                        time.sleep(0.1)  # polling, with the deadline above
                        continue
                    sock.close()
                    pytest.skip(f"the Docker host's address {address} is not an address of this machine "
                                f"({exc}) after {DAD_WAIT_S:g} s: the Docker engine runs elsewhere (a VM?)")
            sock.settimeout(0)
            listeners.append((net, sock))
        yield listeners
    finally:
        for _net, sock in listeners:
            sock.close()


@pytest.mark.needs_docker("the Docker host's networks and the guard that isolates them")
@pytest.mark.parametrize("name", ["client", "server"])
def test_no_packet_reaches_the_docker_host(testbed: Testbed, host_listeners: list[tuple[str, socket.socket]],
                                           name: str) -> None:
    """The Docker host is on-link on every network (each bridge's gateway). A datagram from a
    container to a socket of ours on each of those addresses is refused inside the container
    (EPERM: dropped on its way out), and our socket never receives it.  (Without the guard
    rules it does: checked by hand when this test was written.)"""
    host = testbed.host(name)
    assert len(host_listeners) >= 5  # control v4+v6, and v4+v6 of each data network
    for net, listener in host_listeners:
        address, port = listener.getsockname()[:2]
        sock = host.socket(listener.family, socket.SOCK_DGRAM)
        with pytest.raises(OSError) as info:
            sock.sendto(b"may not reach the Docker host", (address, port))
        assert info.value.errno in (errno.EPERM, errno.ENETUNREACH), (net, address, info.value)
        sock.close()
    for _net, listener in host_listeners:
        with pytest.raises(BlockingIOError):
            listener.recvfrom(100)


def _dns_query(name: str, qid: int = 0x4E42) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", 1, 1)


@pytest.mark.needs_docker("Docker's embedded DNS")
def test_testbed_names_resolve(client: Host) -> None:
    """Docker's embedded DNS still answers the testbed's own host names."""
    sock = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for name in ("server", "router"):
        sock.sendto(_dns_query(name), ("127.0.0.11", 53))
        reply = sock.recv(512, timeout=5)
        rcode, answers = reply[3] & 0x0F, struct.unpack("!H", reply[6:8])[0]
        assert (rcode, answers >= 1) == (0, True), (name, reply)


@pytest.mark.needs_docker("Docker's embedded DNS")
def test_outside_names_are_forwarded_only_to_the_containers_own_loopback(client: Host) -> None:
    """A name outside the testbed is forwarded by the embedded DNS to the container's 127.0.0.1
    (where this test listens), never off the machine: the forwarded query arrives here."""
    upstream = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 53))
    asker = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    asker.sendto(_dns_query("example.invalid"), ("127.0.0.11", 53))
    forwarded = upstream.recv(512, timeout=5)
    assert b"\x07example\x07invalid\x00" in forwarded


@pytest.mark.needs_docker("a container that is stopped and started")
def test_harness_fails_fast_while_a_host_is_down_and_reconnects_after(testbed: Testbed, router: Router) -> None:
    """Stop the router: a call fails within 2 s naming it.  Start it again (it may publish its
    port elsewhere): the same Router object answers again, without a new Testbed."""
    container = testbed.containers()["router"]
    container.stop(timeout=1)
    try:
        start = time.monotonic()
        with pytest.raises(AgentConnectionError, match="router"):
            router.counters()
        assert time.monotonic() - start < 2.0
    finally:
        container.start()
        testbed.wait_ready()
    assert router.ping()
    assert "ipv4_forwarded" in router.counters()
