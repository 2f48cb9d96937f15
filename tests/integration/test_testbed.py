"""The testbed itself: paths through the router, no way out, robust agents."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from netbed.host import Host, Router
from netbed.testbed import CONTROL_PORT, Testbed, agent_token

FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]


def _forwarded(router: Router, family: int) -> int:
    key = "ipv6_forwarded" if family == socket.AF_INET6 else "ipv4_forwarded"
    return int(router.counters()[key])


@pytest.mark.parametrize("family", FAMILIES)
def test_tcp_echo_crosses_the_router(client: Host, server: Host, router: Router, family: int) -> None:
    """A TCP echo from client to server works, and every segment was forwarded by the router."""
    listener = server.socket(family, socket.SOCK_STREAM)
    port = listener.bind(("", 0))[1]
    listener.listen()
    listener.echo()
    before = _forwarded(router, family)
    conn = client.socket(family, socket.SOCK_STREAM)
    conn.connect((server.address(family), port))
    conn.sendall(b"A, B, C")
    assert conn.recv(100) == b"A, B, C"
    conn.close()
    # SYN, SYN-ACK, ACK, data, ACK, echo, ACK: at least 5 forwarded packets.
    assert _forwarded(router, family) - before >= 5


@pytest.mark.parametrize("family", FAMILIES)
def test_udp_round_trip_crosses_the_router(client: Host, server: Host, router: Router, family: int) -> None:
    """A UDP datagram reaches the server, whose reply reaches the client, both via the router."""
    srv = server.socket(family, socket.SOCK_DGRAM)
    port = srv.bind(("", 0))[1]
    cli = client.socket(family, socket.SOCK_DGRAM)
    before = _forwarded(router, family)
    cli.sendto(b"ping", (server.address(family), port))
    data, peer = srv.recvfrom(100)
    assert data == b"ping"
    assert peer[0] == client.address(family), "the server must see the client's own address (no NAT)"
    srv.sendto(b"pong", peer)
    assert cli.recvfrom(100)[0] == b"pong"
    assert _forwarded(router, family) - before == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_client_and_server_route_only_via_the_router(client: Host, server: Host, testbed: Testbed,
                                                    family: int) -> None:
    """The kernel's route from each end to the other goes through the router's address."""
    addrs = testbed.addresses()
    v6 = family == socket.AF_INET6
    to_server = client.route_get(server.address(family))["routes"][0]
    to_client = server.route_get(client.address(family))["routes"][0]
    assert to_server["gateway"] == addrs["router"]["ipv6" if v6 else "ipv4"]
    assert to_client["gateway"] == addrs["router"]["ipv6_server_side" if v6 else "ipv4_server_side"]


# Documentation prefixes (RFC 5737, RFC 3849): looked up, never sent to.
OUTSIDE = ["192.0.2.1", "198.51.100.7", "2001:db8::1"]


@pytest.mark.parametrize("name", ["client", "router", "server"])
@pytest.mark.parametrize("outside", OUTSIDE)
def test_no_route_out_of_the_testbed(testbed: Testbed, name: str, outside: str) -> None:
    """No host has a route to any address outside the testbed: the lookup itself fails."""
    answer = testbed.host(name).route_get(outside)
    assert "routes" not in answer, f"{name} has a route to {outside}: {answer}"
    assert "unreachable" in answer["error"].lower()


@pytest.mark.needs_docker("the agent's control port published by Docker, and its token from the container")
def test_agent_survives_garbage(testbed: Testbed) -> None:
    """Malformed requests get error responses; the agent keeps answering on the same connection."""
    port = testbed.client.control_port
    token = json.dumps(agent_token(testbed.containers()["client"])).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        stream = sock.makefile("rwb")
        garbage = [b"\x00\xff\xfe not json\n", b"[1,2,3]\n", b'{"op": 42, "token": %s}\n' % token,
                   b'{"op": "no_such_op", "token": %s}\n' % token,
                   b'{"op": "bind", "args": {"fd": "x"}}\n', b'{"op": "socket", "args": {"family": "AF_BOGUS"}}\n',
                   b'{"op": "connect", "args": {"fd": 1, "address": ["10.0.0.1", 99999]}}\n',
                   b'{"op": "ping", "surprise": 1}\n']
        kinds = []
        for line in garbage:
            stream.write(line)
            stream.flush()
            reply = json.loads(stream.readline())
            assert reply["ok"] is False
            kinds.append(reply["error"]["kind"])
        assert kinds[:4] == ["bad_json", "bad_request", "bad_request", "unknown_op"]
        stream.write(b'{"id": 9, "op": "ping", "token": %s}\n' % token)
        stream.flush()
        assert json.loads(stream.readline()) == {"ok": True, "result": {"pong": True, "role": "client"}, "id": 9}


def test_remote_errors_carry_errno(client: Host, server: Host) -> None:
    """A kernel error on a host surfaces as an OSError with the remote errno."""
    sock = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(OSError) as info:
        sock.connect((server.ipv4, 1))
    assert info.value.errno == 111  # ECONNREFUSED: the server kernel answered with a reset


@pytest.mark.needs_docker("the control network")
def test_control_network_does_not_join_the_hosts(testbed: Testbed) -> None:
    """Containers cannot reach each other over the control network (inter-container traffic is off)."""
    server_ctl = testbed.containers()["server"].attrs["NetworkSettings"]["Networks"]
    control = next(v for k, v in server_ctl.items() if k.endswith("_control"))
    client = testbed.client
    sock = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(OSError):
        sock.connect((control["IPAddress"], 7000), timeout=1.0)


@pytest.mark.needs_docker("pytest-docker's docker_services")
def test_pytest_docker_services_see_the_testbed(docker_services: Any, router: Router) -> None:
    """pytest-docker's docker_services, as its users call it, answers for the netbed testbed."""
    assert docker_services.port_for("router", int(CONTROL_PORT.split("/")[0])) == router.control_port


@pytest.mark.needs_docker("images")
def test_images_are_built_from_this_checkout(testbed: Testbed) -> None:
    """Every host's image carries the digest of the sources it was built from, and it is this
    checkout's (a reused testbed from an older checkout fails here, and warns at session start)."""
    assert testbed.stale_images() == {}
    status = testbed.status()["images"]
    assert status == {"sources": testbed.sources_digest(), "stale": {}}
