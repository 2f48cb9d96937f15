"""Datagram sockets (UDP) across the router: boundaries kept, no delivery guarantee, no connection.

The primer: "Delivery in a networked environment is not guaranteed. They're connectionless
because you don't need to have an open connection as in Stream Sockets - you build a
packet with the destination information and send it out."
"""

from __future__ import annotations

import errno
import socket
from collections import Counter
from typing import Any

import pytest
from conditions import (
    DUPLICATE_RATE,
    LOSS_RATE,
    Condition,
    impair_counts,
    impaired,
    params,
)

from netbed.host import Host, Router
from netbed.measure import run_sequence, udp_pair
from netbed.stats import rate_in_interval, sample_size

#: Largest UDP payload: 65535 - 20 (IPv4 header) - 8 (UDP header); IPv6: 65535 - 8.
MAX_PAYLOAD: dict[int, int] = {socket.AF_INET: 65507, socket.AF_INET6: 65527}
#: Datagram sizes per family, bytes: tiny, one full 1500-byte frame, one byte past it
#: (fragmented), several fragments, the maximum.
SIZES: dict[int, list[int]] = {
    socket.AF_INET: [1, 100, 1472, 1473, 8000, 65507],
    socket.AF_INET6: [1, 100, 1452, 1453, 8000, 65527],
}
#: Largest payload that fits one 1500-byte frame, per family.
UNFRAGMENTED: dict[int, int] = {socket.AF_INET: 1472, socket.AF_INET6: 1452}

#: Rate tests: sample size from the 99 % Wilson interval half-width we need (a fraction):
#: +-0.56 points on 5 % loss resolves the rate to about +-11 % of itself; the issue asks
#: for at least 10,000 datagrams in any case.
LOSS_HALF_WIDTH = 0.0056
DUPLICATE_HALF_WIDTH = 0.0078
MIN_RATE_SAMPLE = 10_000
#: Send rate for sequence tests, datagrams per second (bounded so that neither the
#: router's userspace engine nor the receiver drop anything of their own accord).
RATE_PPS = 3000.0
#: The receiver's end-of-run detection: this long without a datagram, seconds.
IDLE_S = 1.0


def closed_udp_port(server: Host, family: int = socket.AF_INET) -> int:
    """A UDP port with no socket on the server (bound once, then closed)."""
    probe = server.socket(family, socket.SOCK_DGRAM)
    port = int(probe.bind(("", 0))[1])
    probe.close()
    return port


def run_condition(client: Host, server: Host, router: Router, condition: Condition, count: int,
                  size: int = 64, rate_pps: float = RATE_PPS, direction: str = "to-server",
                  no_check: bool = False) -> dict[str, Any]:
    """Send `count` sequence datagrams client -> server under `condition` (measure.run_sequence);
    return the arrivals, datagrams that were not sequence messages, router counters and the
    server's UDP counter deltas.

    The receiver stops once `count` arrived or after IDLE_S without any; if it stopped while
    the sender was still busy (a stalled sender, e.g. on an overloaded machine), that is
    reported as such rather than counted as loss.
    """
    before = server.snmp()["Udp"]
    expect = None if condition.name == "duplicate" else count
    with impaired(router, condition, direction=direction):
        run = run_sequence(client, server, count, rate_pps, size_bytes=size, idle_s=IDLE_S, expect=expect,
                           no_check=no_check)
        counts = impair_counts(router) if condition.netem else {}
    after = server.snmp()["Udp"]
    delta = {key: after[key] - before.get(key, 0) for key in after}
    arrivals = run.arrivals
    if arrivals and len(arrivals) < count:
        last_ns = max(a.recv_ns for a in arrivals)
        assert last_ns + IDLE_S * 1e9 >= run.sender_done_ns - 0.2e9, (
            f"the receiver gave up {((run.sender_done_ns - last_ns) / 1e9):.2f} s before the sender finished: "
            f"the sender stalled longer than {IDLE_S} s (overloaded machine?); measurement invalid")
    return {"arrivals": arrivals, "foreign": run.foreign, "router": counts, "udp": delta}


# -- record boundaries ------------------------------------------------------------------------
BOUNDARY_CASES = [pytest.param(family, size, id=f"{'ipv6' if family == socket.AF_INET6 else 'ipv4'}-{size}B")
                  for family, sizes in SIZES.items() for size in sizes]


@pytest.mark.property("datagram: each datagram arrives whole (1 B .. 64 KiB, fragmented)")
@pytest.mark.parametrize(("family", "size"), BOUNDARY_CASES)
def test_datagram_boundaries_kept(client: Host, server: Host, family: int, size: int) -> None:
    """A datagram of `size` bytes is read back as exactly one datagram of `size` bytes, not
    truncated, even past the path MTU where IP fragments it and the server reassembles it."""
    cli, srv, dest = udp_pair(client, server, family)
    payload = bytes((i * 7 + size) % 256 for i in range(size))
    ip = "Ip6" if family == socket.AF_INET6 else "Ip"
    before = server.snmp()[ip]["ReasmOKs"]
    assert cli.sendto(payload, dest) == size
    cli.sendto(b"next", dest)
    message = srv.recvmsg(70000, timeout=5)
    assert not message.truncated
    assert len(message.data) == size and message.data == payload
    assert srv.recv(70000, timeout=5) == b"next", "the next datagram must be separate"
    reassembled = server.snmp()[ip]["ReasmOKs"] - before
    if size > UNFRAGMENTED[family]:
        assert reassembled >= 1, "a datagram past the path MTU must arrive as fragments"
    else:
        assert reassembled == 0


@pytest.mark.property("datagram: each datagram arrives whole (1 B .. 64 KiB, fragmented)")
@pytest.mark.parametrize("condition", params("clean", "loss"))
def test_fragmented_datagrams_whole_or_not_at_all(client: Host, server: Host, router: Router,
                                                  condition: Condition) -> None:
    """8000-byte datagrams (6 fragments each) arrive whole with intact content, or not at all:
    under loss some vanish, none arrives partial.

    100 datagrams/s (600 fragments/s): slow enough that a receiver in a software-emulated VM
    keeps up (at 500/s it lost 40 of 300 on the clean path there), so a loss is the router's."""
    count = 300
    result = run_condition(client, server, router, condition, count, size=8000, rate_pps=100)
    arrivals = result["arrivals"]
    assert all(a.size_bytes == 8000 and a.crc_ok for a in arrivals)
    assert result["foreign"] == 0
    if condition.name == "clean":
        assert len(arrivals) == count
    else:
        assert len(arrivals) < count, "loss was configured but every datagram arrived"


@pytest.mark.property("datagram: EMSGSIZE beyond the maximum payload")
@pytest.mark.parametrize("family", [pytest.param(socket.AF_INET, id="ipv4"),
                                    pytest.param(socket.AF_INET6, id="ipv6")])
def test_oversized_datagram_is_refused(client: Host, server: Host, family: int) -> None:
    """One byte more than the largest UDP payload (65508 B on IPv4, 65528 B on IPv6) fails at
    the sender with EMSGSIZE; the maximum itself is accepted."""
    cli, _srv, dest = udp_pair(client, server, family)
    limit = MAX_PAYLOAD[family]
    assert cli.sendto(b"\0" * limit, dest) == limit
    with pytest.raises(OSError) as info:
        cli.sendto(b"\0" * (limit + 1), dest)
    assert info.value.errno == errno.EMSGSIZE


# -- no delivery guarantee ---------------------------------------------------------------------
@pytest.mark.property("datagram: loss rate as configured (99 % CI)")
@pytest.mark.parametrize("condition", params("loss"))
def test_loss_rate_within_confidence_interval(client: Host, server: Host, router: Router,
                                              condition: Condition) -> None:
    """Under "loss 5%" the fraction of datagrams lost end to end is consistent with 5 %: the
    configured rate lies inside the 99 % Wilson interval of the measured loss."""
    count = max(MIN_RATE_SAMPLE, sample_size(LOSS_RATE, LOSS_HALF_WIDTH))
    result = run_condition(client, server, router, condition, count)
    seqs = [a.seq for a in result["arrivals"]]
    context = f"router {result['router']}, server Udp {result['udp']}"
    assert len(set(seqs)) == len(seqs), "loss must not duplicate"
    assert result["udp"].get("RcvbufErrors", 0) == 0, f"receiver overflowed: measurement invalid; {context}"
    lost = count - len(seqs)
    ok, (lo, hi) = rate_in_interval(lost, count, LOSS_RATE)
    assert ok, f"lost {lost}/{count} = {lost / count:.4f}; 99 % CI [{lo:.4f}, {hi:.4f}] excludes {LOSS_RATE}; {context}"


@pytest.mark.property("datagram: reordering is visible to the receiver")
@pytest.mark.parametrize("condition", params("clean", "reorder"))
def test_reordering_observed(client: Host, server: Host, router: Router, condition: Condition) -> None:
    """Under "delay 10ms reorder 25%" datagrams sent 1 ms apart arrive out of sending order
    (and each exactly once); on the clean network they arrive in order."""
    count = 500
    result = run_condition(client, server, router, condition, count, rate_pps=1000)
    seqs = [a.seq for a in result["arrivals"]]
    assert sorted(seqs) == list(range(count)), "every datagram must arrive exactly once (no loss configured)"
    inversions = sum(1 for prev, cur in zip(seqs, seqs[1:], strict=False) if cur < prev)
    if condition.name == "clean":
        assert inversions == 0
    else:
        assert inversions > 0, "reordering configured but the datagrams arrived in order"


@pytest.mark.property("datagram: duplicates as configured (99 % CI)")
@pytest.mark.parametrize("condition", params("duplicate"))
def test_duplicates_arrive(client: Host, server: Host, router: Router, condition: Condition) -> None:
    """Under "duplicate 10%" some datagrams arrive twice, and the fraction duplicated is
    consistent with 10 % (inside the 99 % Wilson interval)."""
    count = max(MIN_RATE_SAMPLE, sample_size(DUPLICATE_RATE, DUPLICATE_HALF_WIDTH))
    result = run_condition(client, server, router, condition, count)
    copies = Counter(a.seq for a in result["arrivals"])
    context = f"router {result['router']}, server Udp {result['udp']}"
    assert result["udp"].get("RcvbufErrors", 0) == 0, f"receiver overflowed: measurement invalid; {context}"
    assert set(copies) <= set(range(count)), "datagrams arrived that were never sent"
    # Duplication is decided per forwarded datagram, so the rate is measured over the
    # datagrams that arrived at all (an incidental drop elsewhere does not bias it).
    delivered = len(copies)
    assert delivered >= 0.99 * count, f"only {delivered}/{count} distinct datagrams arrived; {context}"
    duplicated = sum(1 for n in copies.values() if n > 1)
    assert duplicated > 0, f"duplication configured but no datagram arrived twice; {context}"
    ok, (lo, hi) = rate_in_interval(duplicated, delivered, DUPLICATE_RATE)
    assert ok, f"{duplicated}/{delivered} duplicated; 99 % CI [{lo:.4f}, {hi:.4f}] excludes {DUPLICATE_RATE}; {context}"


@pytest.mark.property("datagram: corrupted datagrams are discarded (UDP checksum)")
@pytest.mark.parametrize("condition", params("corrupt"))
def test_corruption_discarded_by_checksum(client: Host, server: Host, router: Router,
                                          condition: Condition) -> None:
    """Under "corrupt 5%" the server's kernel drops the corrupted datagrams: its Udp InCsumErrors
    counter rises, every datagram that does arrive is intact, and each one sent is either
    delivered or counted as a UDP input error."""
    count = 1000
    result = run_condition(client, server, router, condition, count, size=200, rate_pps=2000)
    arrivals = result["arrivals"]
    assert all(a.crc_ok for a in arrivals), "a corrupted datagram was delivered despite the checksum"
    assert result["udp"]["InCsumErrors"] > 0, f"no checksum errors counted: {result['udp']}"
    assert len(arrivals) + result["udp"]["InErrors"] == count, (
        f"{len(arrivals)} delivered + {result['udp']['InErrors']} input errors != {count} sent")


@pytest.mark.property("datagram: without checksums, corrupted payloads arrive")
@pytest.mark.parametrize("condition", params("corrupt"))
def test_corruption_arrives_without_checksum(client: Host, server: Host, router: Router,
                                             condition: Condition) -> None:
    """With SO_NO_CHECK=1 on the sender (IPv4 UDP checksum 0 = none), the receiving kernel cannot
    tell corrupted datagrams apart: some arrive with a payload whose CRC-32 no longer matches."""
    result = run_condition(client, server, router, condition, 1000, size=200, rate_pps=2000, no_check=True)
    corrupted = sum(1 for a in result["arrivals"] if not a.crc_ok)
    assert corrupted > 0, f"no corrupted payload arrived ({len(result['arrivals'])} arrivals, {result['udp']})"


# -- connectionless ----------------------------------------------------------------------------
@pytest.mark.property("datagram: connectionless (one socket, many peers; connect() = default peer)")
def test_one_socket_many_peers(client: Host, server: Host, router: Router) -> None:
    """One unconnected server socket receives from three peers (two client sockets, one on the
    router) and answers each at its own address; each peer gets exactly its own answer."""
    srv = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = srv.bind(("", 0))[1]
    peers = [client.socket(socket.AF_INET, socket.SOCK_DGRAM), client.socket(socket.AF_INET, socket.SOCK_DGRAM),
             router.socket(socket.AF_INET, socket.SOCK_DGRAM)]
    for i, peer in enumerate(peers):
        peer.sendto(f"hello from {i}".encode(), (server.ipv4, port))
    seen = set()
    for _ in peers:
        data, address = srv.recvfrom(100, timeout=5)
        seen.add(address)
        srv.sendto(b"answer to " + data, address)
    assert len(seen) == len(peers), f"expected {len(peers)} distinct peers, got {seen}"
    for i, peer in enumerate(peers):
        data, address = peer.recvfrom(100, timeout=5)
        assert data == f"answer to hello from {i}".encode()
        assert address == (server.ipv4, port)


@pytest.mark.property("datagram: connectionless (one socket, many peers; connect() = default peer)")
def test_connect_sets_default_peer_and_filters(client: Host, server: Host) -> None:
    """connect() on a UDP socket sends no packet; it sets the destination of send() and makes
    the socket accept datagrams from that peer only: one from another port is dropped."""
    peer = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_port = peer.bind(("", 0))[1]
    stranger = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("", 0))
    cli = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.connect((server.ipv4, peer_port))
    cli.send(b"no address needed")
    data, address = peer.recvfrom(100, timeout=5)
    assert data == b"no address needed"
    stranger.sendto(b"from a stranger", address)  # sent first ...
    peer.sendto(b"from the peer", address)  # ... yet the peer's datagram is the one read
    assert cli.recv(100, timeout=5) == b"from the peer"
    with pytest.raises(TimeoutError):
        cli.recv(100, timeout=0.5)


@pytest.mark.property("datagram: closed port on a connected socket -> ECONNREFUSED")
@pytest.mark.parametrize("family", [pytest.param(socket.AF_INET, id="ipv4"),
                                    pytest.param(socket.AF_INET6, id="ipv6")])
def test_connected_socket_reports_refusal(client: Host, server: Host, family: int) -> None:
    """A datagram to a closed port draws an ICMP port unreachable; a connected UDP socket
    reports it as ECONNREFUSED on its next call."""
    port = closed_udp_port(server, family)
    cli = client.socket(family, socket.SOCK_DGRAM)
    cli.connect((server.address(family), port))
    cli.send(b"anyone there?")
    with pytest.raises(OSError) as info:
        cli.recv(100, timeout=5)
    assert info.value.errno == errno.ECONNREFUSED, repr(info.value)

