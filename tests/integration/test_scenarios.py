"""Network conditions over time (router-executed scenarios), measured with real traffic.

Times: every host stamps with the same kernel's CLOCK_REALTIME, and the router's timeline
gives each step's due time and the interval in which it took effect ([began, effective]: the
switch happened in there). Tolerances come from the same run's own noise, never from a
constant: the longest gap between two consecutive sends and the longest one-way delay of the
delivered datagrams (bounds that hold for every datagram of the run).
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Sequence
from typing import Any

import pytest

from netbed.errors import AgentError
from netbed.host import Host, Router
from netbed.measure import SEQUENCE_RCVBUF_BYTES, Arrival, arrivals_from, median, udp_pair
from netbed_core.netem import NetemError, parse

#: The issue's target: an edge within 2 ms of its scheduled time (userspace engine).
STEP_TIMING_TARGET_MS = 2.0
RATE_PPS = 2000
INTERVAL_NS = 1_000_000_000 // RATE_PPS


#: How long the traffic runs before the scenario starts, s: its first step then meets traffic.
LEAD_S = 0.15


def send_during(client: Host, server: Host, seconds: float, start: Any) -> tuple[list[Arrival], Any]:
    """UDP sequence traffic client -> server at RATE_PPS for `seconds`; `start()` starts the
    scenario LEAD_S after the sender. Returns the arrivals and what `start()` returned."""
    pair = udp_pair(client, server, rcvbuf_bytes=SEQUENCE_RCVBUF_BYTES)
    count = int(seconds * RATE_PPS)
    job = pair.rx.start_recv_sequence(duration_s=seconds + 10, idle_s=1.5)
    sender = client.start("send_sequence", fd=pair.tx.fd, count=count, size=64, rate_pps=RATE_PPS,
                          address=list(pair.address), timeout=seconds + 10)
    time.sleep(LEAD_S)  # a lead, not a wait for something: the traffic must be flowing first
    sc = start()
    sent = sender.wait(timeout=seconds + 15)
    assert sent["sent"] == count, sent
    got = job.wait(timeout=seconds + 15)
    return sorted(arrivals_from(got["arrivals"]), key=lambda a: a.seq), sc


def worst_ns(arrivals: Sequence[Arrival]) -> tuple[float, float]:
    """(longest gap between consecutive sends, longest one-way delay), ns: bounds that hold for
    every delivered datagram of the run, where a p99 would not."""
    gaps = [b.send_ns - a.send_ns for a, b in zip(arrivals, arrivals[1:], strict=False) if b.seq == a.seq + 1]
    return float(max(gaps)), float(max(a.recv_ns - a.send_ns for a in arrivals))


def outages(arrivals: Sequence[Arrival]) -> list[tuple[Arrival, Arrival]]:
    """(last delivered before, first delivered after) each run of lost sequence numbers."""
    return [(a, b) for a, b in zip(arrivals, arrivals[1:], strict=False) if b.seq - a.seq > 1]


def test_flap_edges_follow_the_timeline(client: Host, server: Host, router: Router) -> None:
    """5 cycles of 100 ms down / 200 ms up (to-server) under sequence traffic. Every outage
    the receiver sees lies inside a partition of the timeline (no other loss), and every
    partition long enough to be seen in this run's noise (down for longer than one interval
    plus the longest gap between sends plus the longest one-way delay) shows as an outage whose edges are where the
    timeline says: the last datagram through was sent before the partition took effect and the
    first one after arrived after the heal began (exact: time only runs forward); on the other
    side within that same measured noise. Skipped, saying why, when load leaves fewer than 3
    partitions observable."""
    arrivals, sc = send_during(client, server, LEAD_S + 2.5,  # a second longer than the flaps: start-up slack
                               lambda: router.flap(up="200ms", down="100ms", repeat=5, direction="to-server"))
    rows = sc.wait()["timeline"]
    assert all(r["error"] is None for r in rows) and len(rows) == 10
    pacing, path = worst_ns(arrivals)
    tol = INTERVAL_NS + pacing + path

    def began(row: dict[str, Any]) -> int:
        return int(row["began_ns"] + row["scheduled_wall_ns"] - row["scheduled_ns"])

    partitions = list(zip(rows[::2], rows[1::2], strict=True))
    gaps = outages(arrivals)
    queue = (router.impair_status()["directions"]["to-server"]["stats"] or {}).get("kernel")
    for last, first in gaps:
        assert any(began(down) - tol <= last.send_ns <= down["effective_wall_ns"]
                   and began(up) <= first.recv_ns <= up["effective_wall_ns"] + tol for down, up in partitions), \
            (f"datagrams {last.seq + 1}..{first.seq - 1} lost outside every partition (noise {tol / 1e6:.1f} ms; "
             f"the kernel's NFQUEUE counters, where a starved engine's overflow shows: {queue})")
    observable = [(down, up) for down, up in partitions
                  if began(up) - down["effective_wall_ns"] > tol
                  and arrivals[0].send_ns < began(down) and up["effective_wall_ns"] < arrivals[-1].send_ns]
    if len(observable) < 3:
        pytest.skip(f"only {len(observable)} partitions observable: longest send gap {pacing / 1e6:.1f} ms, "
                    f"longest one-way delay {path / 1e6:.1f} ms (machine load)")
    for down, up in observable:
        seen = [(last, first) for last, first in gaps
                if last.send_ns <= down["effective_wall_ns"] and first.recv_ns >= began(up)
                and last.send_ns >= began(down) - tol and first.recv_ns <= up["effective_wall_ns"] + tol]
        assert len(seen) == 1, f"partition at {down['scheduled_wall_ns']}: outages {seen} (noise {tol / 1e6:.1f} ms)"


def delay_edges(arrivals: Sequence[Arrival], rows: Sequence[dict[str, Any]], threshold_ms: float
                ) -> list[tuple[dict[str, Any], Arrival, Arrival]]:
    """Per delay step after the first: (row, last datagram handled by the previous setting, first
    one handled by the new), the datagrams in send order, a datagram's setting told by its one-way
    delay (above `threshold_ms`: delayed). None of the pair is lost, so both send times are known."""
    by_send = sorted(arrivals, key=lambda a: a.send_ns)
    edges = []
    for row in rows[1:]:
        delayed_after = row["action"].endswith("ms")  # "to-server: delay 50ms" vs "to-server: clear"
        if not delayed_after:
            continue  # a clear releases what the delay still holds at once: delays cannot tell that edge
        window = [a for a in by_send if abs(a.send_ns - row["scheduled_wall_ns"]) < 60_000_000]
        first_new = next((i for i in range(len(window)) if all(
            (a.one_way_ms > threshold_ms) == delayed_after for a in window[i:])), None)
        if first_new is not None and first_new > 0:
            edges.append((row, window[first_new - 1], window[first_new]))
    return edges


def test_step_timing_of_delay_steps(client: Host, server: Host, router: Router) -> None:
    """Steps alternating clear and delay 50ms every 100 ms (to-server, 5 cycles), with
    sequence traffic every 0.5 ms: every datagram arrives, and its one-way delay says which
    setting handled it (above 40 ms: delayed; load can add delay to an undelayed datagram but
    never remove any), so each clear -> delay edge is bracketed by two delivered datagrams' send
    times. (The delay -> clear edges are not: a clear releases at once what the delay still
    holds, so those datagrams arrive early without telling when the step took effect.)

    Skipped, saying why, when fewer than 3 of the 5 edges are bracketed to 1 ms (the sender
    could not keep its pace). Every edge whose bracket is at most 1 ms wide lies within
    the router's [began, effective] interval widened by that bracket and the run's longest
    one-way delay; and
    the median distance of those edges from their scheduled times is within the issue's 2 ms
    plus the median of how late the router's scenario thread woke up in this run (began -
    scheduled: 0 on an idle machine; under load the kernel runs the thread late, which is the
    CPU's delay, not the path's; the timeline shows it and bench/scenario_timing.py measures it)."""
    steps = [{"netem": "clear", "duration": "100ms", "direction": "to-server"},
             {"netem": "delay 50ms", "duration": "100ms", "direction": "to-server"}]
    arrivals, sc = send_during(client, server, LEAD_S + 2.0, lambda: router.scenario(steps, repeat=5))
    rows = sc.wait()["timeline"]
    assert all(r["error"] is None for r in rows) and len(rows) == 10
    _, path = worst_ns(arrivals)
    edges = [(row, before, after) for row, before, after in delay_edges(arrivals, rows, 40.0)
             if after.send_ns - before.send_ns <= 1_000_000]
    if len(edges) < 3:
        pytest.skip(f"only {len(edges)} of 5 edges bracketed to 1 ms: the sender could not keep its pace "
                    f"(longest one-way delay {path / 1e6:.1f} ms; machine load)")
    errors_ms = []
    for row, before, after in edges:
        offset = row["scheduled_wall_ns"] - row["scheduled_ns"]
        began, effective = row["began_ns"] + offset, row["effective_wall_ns"]
        assert before.send_ns <= effective + path, (row, before)
        assert after.send_ns >= began - (after.send_ns - before.send_ns) - path, (row, after)
        errors_ms.append(((before.send_ns + after.send_ns) / 2 - row["scheduled_wall_ns"]) / 1e6)
    woke_late_ms = statistics.median((r["began_ns"] - r["scheduled_ns"]) / 1e6 for r in rows)
    assert statistics.median(abs(e) for e in errors_ms) <= STEP_TIMING_TARGET_MS + woke_late_ms, \
        (errors_ms, woke_late_ms)


def test_ramp_steps_have_their_median_delay(client: Host, server: Host, router: Router) -> None:
    """ramp delay 10 ms -> 30 ms in 3 steps of 400 ms (to-server): the datagrams sent well
    inside each step have that step's median one-way delay, within the static-delay tolerance
    (max(0.5 ms, 2%)) over the unimpaired path's median."""
    base, _ = send_during(client, server, LEAD_S + 0.3, lambda: None)
    baseline = median([a.one_way_ms for a in base])
    arrivals, sc = send_during(client, server, LEAD_S + 1.3,
                               lambda: router.ramp("delay", "10ms", "30ms", over="1.2s", steps=3,
                                                   direction="to-server"))
    rows = sc.wait()["timeline"]
    assert [r["action"] for r in rows] == ["to-server: delay 10ms", "to-server: delay 20ms", "to-server: delay 30ms"]
    for i, (row, want_ms) in enumerate(zip(rows, (10.0, 20.0, 30.0), strict=True)):
        # Inside the step: sent after it took effect (plus a margin), before the next one began.
        begin = row["effective_wall_ns"] + 5_000_000
        end = (rows[i + 1]["scheduled_wall_ns"] if i + 1 < len(rows) else row["scheduled_wall_ns"] + 400_000_000) \
            - 5_000_000
        delays = [a.one_way_ms for a in arrivals if begin <= a.send_ns < end]
        assert len(delays) >= 300, (i, len(delays))
        assert abs(median(delays) - baseline - want_ms) <= max(0.5, 0.02 * want_ms), (want_ms, median(delays), baseline)


def test_a_tcp_connection_survives_flaps(client: Host, server: Host, router: Router) -> None:
    """A TCP transfer across partitions of 200 ms in both directions (rate 1 Mbit/s in
    between, so the 300 kB transfer spans several of them) completes with every byte, in order
    (SHA-256 equal), and netbed sends no FIN or RST: neither end's reset counters move."""
    listener = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    port = listener.bind(("", 0))[1]
    listener.listen()
    cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.connect((server.ipv4, port), timeout=10)
    conn, _ = listener.accept(timeout=10)
    resets = {h.name: (h.snmp()["Tcp"]["OutRsts"], h.snmp()["Tcp"]["EstabResets"]) for h in (client, server)}
    steps = [{"netem": "rate 1mbit", "duration": "300ms"}, {"netem": "partition", "duration": "200ms"}]
    receiver = conn.start_stream_recv(timeout=60)
    with router.scenario(steps, repeat=0, name="tcp flaps") as sc:
        sent = cli.stream_send(300_000, seed=11, timeout=60)
        got = receiver.wait(timeout=65)
        rows = sc.timeline()
    partitions = [r for r in rows if r.action.endswith("partition") and r.effective_ns is not None
                  and r.effective_ns < time.time_ns()]
    assert len(partitions) >= 3, f"the transfer spanned only {len(partitions)} partitions: {rows}"
    assert got["bytes"] == sent["bytes"] == 300_000
    assert got["sha256"] == sent["sha256"]
    after = {h.name: (h.snmp()["Tcp"]["OutRsts"], h.snmp()["Tcp"]["EstabResets"]) for h in (client, server)}
    assert after == resets, "a reset was sent or a connection reset"


def test_a_partition_heals_an_idle_connection(client: Host, server: Host, router: Router) -> None:
    """An established connection idle across a 1 s partition both ways carries data after it
    heals; no reset on either end."""
    listener = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    port = listener.bind(("", 0))[1]
    listener.listen()
    cli = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.connect((server.ipv4, port), timeout=10)
    conn, _ = listener.accept(timeout=10)
    before = [h.snmp()["Tcp"]["EstabResets"] for h in (client, server)]
    with router.scenario([{"netem": "partition", "duration": "1s"}, {"netem": "clear"}]) as sc:
        cli.sendall(b"during", timeout=5)  # queued and retransmitted until the heal
        sc.wait()
    assert conn.recv(6, timeout=10) == b"during"
    conn.sendall(b"after", timeout=5)
    assert cli.recv(5, timeout=5) == b"after"
    assert [h.snmp()["Tcp"]["EstabResets"] for h in (client, server)] == before


def _netbed_jump(router: Router) -> bool:
    return "-j NETBED" in router.run(["iptables", "-w", "-S", "FORWARD"], timeout=10, check=True).stdout_text


def test_a_bad_step_changes_nothing(router: Router) -> None:
    """scenario_start with an invalid netem line in step 2 answers bad_netem with the netem
    parser's own message naming step 2; the router stays pristine and no scenario runs."""
    with pytest.raises(NetemError) as parser:
        parse("delay 10ms loss 150%")
    with pytest.raises(AgentError) as info:
        router.call("scenario_start", steps=[{"netem": "delay 5ms", "duration": "1s"},
                                             {"netem": "delay 10ms loss 150%"}], repeat=1)
    assert info.value.kind == "bad_netem"
    assert "step 2" in str(info.value) and str(parser.value) in str(info.value)
    assert all(d["impairment"] is None for d in router.impair_status()["directions"].values())
    assert router.scenario_status()["state"] in ("none", "stopped", "finished", "failed")
    assert not _netbed_jump(router)


@pytest.mark.parametrize("how", ["stop", "reset"])
def test_stop_and_reset_return_to_pristine_forwarding(client: Host, server: Host, router: Router, how: str) -> None:
    """A scenario repeating until stopped, stopped by scenario_stop or by the per-test reset:
    no impairment remains, no packet is steered to the engine (no NETBED jump in FORWARD),
    and 500 datagrams pass without loss."""
    sc = router.flap(up="50ms", down="50ms", repeat=0)
    time.sleep(0.3)  # let it run a few cycles (nothing to check while it does)
    if how == "stop":
        final = sc.stop()
    else:
        router.reset()
        final = router.scenario_status()
    assert final["state"] == "stopped" and len(final["timeline"]) >= 2
    assert all(d["impairment"] is None for d in router.impair_status()["directions"].values())
    assert not _netbed_jump(router)
    pair = udp_pair(client, server, rcvbuf_bytes=SEQUENCE_RCVBUF_BYTES)
    job = pair.rx.start_recv_sequence(duration_s=10, expect=500, idle_s=1.0)
    pair.tx.send_sequence(500, rate_pps=5000, address=pair.address)
    assert len(job.wait(timeout=15)["arrivals"]) == 500


def test_impair_is_refused_while_a_scenario_runs(router: Router) -> None:
    """A running scenario owns the impairments: impair and clear answer busy, naming it."""
    with router.flap(up="1s", down="1s", repeat=0):
        with pytest.raises(AgentError) as info:
            router.impair("delay 5ms")
        assert info.value.kind == "busy" and "flap" in str(info.value)


def test_pausing_a_host_freezes_its_programs_not_its_network(client: Host, server: Host, router: Router) -> None:
    """A host fault: the server paused for 500 ms (docker pause, executed by the harness at the
    router's schedule). The datagrams sent meanwhile are not lost (the kernel still takes them
    into the socket buffer) but the frozen receiver reads none of them before the resume began;
    the timeline shows both faults as executed by the harness."""
    steps = [{"netem": "clear", "duration": "200ms"}, {"pause": "server", "duration": "500ms"},
             {"resume": "server", "duration": "300ms"}]
    arrivals, sc = send_during(client, server, LEAD_S + 1.5, lambda: router.scenario(steps))
    rows = sc.wait()["timeline"]
    sc.stop()
    pause, resume = rows[1], rows[2]
    assert (pause["by"], pause["action"], resume["action"]) == ("harness", "pause server", "resume server")
    assert pause["error"] is None and resume["error"] is None, rows
    seqs = sorted(a.seq for a in arrivals)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a datagram was lost while the server was paused"
    frozen = [a for a in arrivals if pause["effective_wall_ns"] < a.send_ns < resume["began_wall_ns"]]
    if not frozen:
        pytest.skip("the sender sent nothing while the server was paused (machine load)")
    assert all(a.recv_ns >= resume["began_wall_ns"] for a in frozen), "the paused receiver read a datagram"


@pytest.mark.netbed_scenario("handover")
def test_the_marker_runs_a_named_scenario(router: Router) -> None:
    """@pytest.mark.netbed_scenario("handover") starts the named scenario before the test."""
    status = router.scenario_status()
    assert (status["name"], status["state"]) == ("handover", "running")
    assert status["steps"][1]["netem"] == "partition"
