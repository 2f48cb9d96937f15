"""Capture at the router: each packet enters on the client side and, unless the router
dropped it, leaves on the server side; the userspace engine's decision log names exactly the
packets that did not leave.  The capture is parsed with netbed's own stdlib pcapng reader."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from netbed import capture
from netbed.errors import CaptureError
from netbed.host import Host, Router
from netbed.measure import run_sequence
from netbed_core.packet_key import ip_key
from netbed_core.pcapng import Packet

#: Datagrams per run and their send rate (low enough that nothing but the impairment drops).
COUNT = 400
RATE_PPS = 1000.0


def udp_to(packets: list[Packet], side: str, port: int) -> list[tuple[str, int]]:
    """(packet key, capture time ns) of the IPv4/UDP packets to `port` seen on `side`."""
    out = []
    for p in packets:
        if not p.interface.endswith(f"({side} side)") or p.data[12:14] != b"\x08\x00":
            continue
        ip = p.data[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] == socket.IPPROTO_UDP and struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] == port:
            key = ip_key(ip)
            assert key is not None
            out.append((key, p.ts_ns))
    return out


def backend(router: Router) -> str:
    return str(router.impair_status()["backend"])


def sequence_port(packets: list[Packet]) -> int:
    """The destination port of the client's sequence datagrams (the one port UDP went to)."""
    ports = {struct.unpack("!H", p.data[14 + 20 + 2:14 + 20 + 4])[0] for p in packets
             if p.data[12:14] == b"\x08\x00" and p.data[14 + 9] == socket.IPPROTO_UDP}
    assert len(ports) == 1, ports
    return ports.pop()


def test_loss_shows_as_packets_entering_but_not_leaving(client: Host, server: Host, router: Router,
                                                         tmp_path: Path) -> None:
    """loss 50% (seeded) to the server: every datagram enters on the client side, only the
    ones that arrived leave on the server side, and the decision log's dropped entries are
    exactly the ones missing there (userspace backend; the kernel has no decision log).
    Seeded where the backend can seed (tc before iproute2 6.3 cannot: unseeded there, and with
    COUNT datagrams at 50% neither "none" nor "all" lost is a real possibility)."""
    seed = " seed 11" if backend(router) == "userspace" else ""
    router.impair(f"loss 50%{seed}", direction="to-server")
    with router.capture_start(decisions=True) as cap:
        run = run_sequence(client, server, COUNT, RATE_PPS)
        result = cap.stop()
        path = cap.fetch(tmp_path / "c.pcapng", decisions=tmp_path / "d.jsonl")
    assert result.warnings == []
    assert result.dropped_by_kernel == {"client": 0, "server": 0}, "the capture itself lost packets"
    packets = capture.read(path)
    port = sequence_port(packets)
    entered = [k for k, _ in udp_to(packets, "client", port)]
    left = [k for k, _ in udp_to(packets, "server", port)]
    assert len(entered) == len(set(entered)) == COUNT
    by_side = capture.keys_by_side(packets)  # the helper the README names finds the same keys
    assert set(entered) <= set(by_side["client"]) and set(left) <= set(by_side["server"])
    assert set(left) <= set(entered)
    assert len(left) == len(run.arrivals)  # what the server's socket got is what left the router
    assert 0 < len(left) < COUNT
    if backend(router) != "userspace":
        assert cap.decisions_note and "kernel" in cap.decisions_note
        pytest.skip("the decision log needs the userspace engine; the kernel backend has none")
    _, decisions = capture.read_decisions(tmp_path / "d.jsonl")
    mine = [d for d in decisions if d["key"] in set(entered)]
    dropped = {d["key"] for d in mine if d["fate"] == "drop"}
    assert {d.get("reason") for d in mine if d["fate"] == "drop"} == {"loss"}
    assert dropped == set(entered) - set(left)
    assert {d["key"] for d in mine if d["fate"] != "drop"} == set(left)


def test_a_delayed_packet_leaves_no_earlier_than_its_delay(client: Host, server: Host, router: Router,
                                                             tmp_path: Path) -> None:
    """delay 30ms to the server: on the capture each datagram leaves the server side at least
    30 ms after it entered the client side (a lower bound: the router never sends early), and
    the decision log states each one's delay."""
    router.impair("delay 30ms", direction="to-server")
    with router.capture_start(direction="to-server", decisions=True) as cap:
        run_sequence(client, server, 50, 200.0, expect=50)
        path = cap.fetch(tmp_path / "c.pcapng", decisions=tmp_path / "d.jsonl")
    packets = capture.read(path)
    port = sequence_port(packets)
    entered = dict(udp_to(packets, "client", port))
    left = dict(udp_to(packets, "server", port))
    assert set(entered) == set(left) and len(entered) == 50
    assert min(left[k] - entered[k] for k in entered) >= 30_000_000
    if backend(router) == "userspace":
        _, decisions = capture.read_decisions(tmp_path / "d.jsonl")
        delays = {d["key"]: d.get("delay_us") for d in decisions if d["key"] in entered}
        assert set(delays) == set(entered) and all(d == 30000.0 for d in delays.values())


def test_direction_filter_captures_one_way_only(client: Host, server: Host, router: Router,
                                                tmp_path: Path) -> None:
    """direction to-client: the server's replies are captured, the client's requests are not."""
    with router.capture_start(direction="to-client") as cap:
        assert client.ping()
        run_sequence(server, client, 20, 200.0, expect=20)
        path = cap.fetch(tmp_path / "c.pcapng")
    packets = capture.read(path)
    port = sequence_port(packets)
    assert len(udp_to(packets, "server", port)) == 20 and len(udp_to(packets, "client", port)) == 20
    towards_server = [p for p in packets if p.data[12:14] == b"\x08\x00" and
                      socket.inet_ntoa(p.data[14 + 16:14 + 20]) == server.ipv4]
    assert towards_server == []


@pytest.mark.parametrize("args, message", [
    ({"direction": "sideways"}, "direction 'sideways'"),
    ({"ring_mb": 1}, "'ring_mb' must be >= 4"),
    ({"ring_mb": 5000}, "'ring_mb' must be <= 1024"),
    ({"color": "red"}, "unknown argument"),
])
def test_bad_capture_arguments_are_named(router: Router, args: dict[str, object], message: str) -> None:
    with pytest.raises(CaptureError, match=message):
        capture._call(router, "capture_start", **args)


def test_unknown_handles_and_reads_of_running_captures_are_refused(router: Router) -> None:
    with pytest.raises(CaptureError, match="no capture 'nope'"):
        capture._call(router, "capture_stop", handle="nope")
    with router.capture_start() as cap:
        with pytest.raises(CaptureError, match="still running"):
            capture._call(router, "capture_read", handle=cap.handle)
        cap.stop()
        with pytest.raises(CaptureError, match="past the end"):
            capture._call(router, "capture_read", handle=cap.handle, offset=10**9)
        with pytest.raises(CaptureError, match="no decisions file"):
            capture._call(router, "capture_read", handle=cap.handle, file="decisions")


def test_a_capture_that_cannot_start_says_why(router: Router) -> None:
    """No tcpdump on the router: capture_start fails at once, naming tcpdump, and leaves no
    capture behind."""
    router.run(["mv", "/usr/bin/tcpdump", "/usr/bin/tcpdump.netbed-test"], timeout=10, check=True)
    try:
        with pytest.raises(CaptureError, match="tcpdump"):
            router.capture_start()
    finally:
        router.run(["mv", "/usr/bin/tcpdump.netbed-test", "/usr/bin/tcpdump"], timeout=10, check=True)
    router.capture_start().discard()  # its slot was freed


def test_the_number_of_captures_is_bounded_and_reset_frees_them(router: Router) -> None:
    """At most 4 captures exist (the session's own may be one of them); `reset` discards all
    but a session's (started with survives_reset)."""
    survivor = capture.start(router, survives_reset=True)
    caps = []
    try:
        with pytest.raises(CaptureError, match="4 captures exist already"):
            for _ in range(4):
                caps.append(router.capture_start())
        router.reset()
        caps.append(router.capture_start())  # room again
        assert survivor.snapshot(0).result is not None  # the survivor still runs
    finally:
        survivor.discard()
        for c in caps:
            c.discard()


def test_a_snapshot_holds_the_span_asked_for_and_the_capture_goes_on(client: Host, server: Host,
                                                                    router: Router, tmp_path: Path) -> None:
    """Two bursts; a snapshot of the time between them holds the second burst only, and the
    capture keeps running (a later snapshot has both)."""
    with capture.start(router) as cap:
        run_sequence(client, server, 10, 200.0, expect=10)
        between = time.time_ns()
        run_sequence(client, server, 20, 200.0, expect=20)
        second = cap.snapshot(between).fetch(tmp_path / "second.pcapng")
        both = cap.snapshot(0).fetch(tmp_path / "both.pcapng")
    ports_second = {sequence_port_of(p) for p in capture.read(second)} - {None}
    ports_both = {sequence_port_of(p) for p in capture.read(both)} - {None}
    assert len(ports_second) == 1 and len(ports_both) == 2 and ports_second < ports_both


def sequence_port_of(p: Packet) -> int | None:
    if p.data[12:14] != b"\x08\x00" or p.data[14 + 9] != socket.IPPROTO_UDP:
        return None
    return int(struct.unpack("!H", p.data[14 + 22:14 + 24])[0])


def test_discarded_captures_free_their_slot(router: Router) -> None:
    """Start and discard twice as many captures as may exist at once: none is left behind
    (a discard that silently failed would hit the limit at the fifth)."""
    for _ in range(8):
        router.capture_start().discard()
    with router.capture_start() as cap:
        assert cap.stop().warnings == []


def test_tcpdump_reads_the_merged_pcapng(client: Host, server: Host, router: Router) -> None:
    """The pcapng netbed writes is read by tcpdump itself (on the router, which has it): each
    echo request shows twice, once per interface."""
    with router.capture_start() as cap:
        client.run(["ping", "-c", "2", "-i", "0.2", server.ipv4], timeout=20, check=True)
        path = cap.stop().raw["path"]
        out = router.run(["tcpdump", "-nr", path], timeout=30, check=True).stdout_text
    assert out.count(f"{client.ipv4} > {server.ipv4}: ICMP echo request") == 4, out
