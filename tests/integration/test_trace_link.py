"""Trace-driven links across the testbed: the delivered throughput follows the trace.

The trace is the bundled ``step-12-3-24-6mbit`` (1 s each at 12, 3, 24 and 6 Mbit/s: three rate
changes; 4 s rather than the issue's 30 s, to keep the suite short; the cellular trace runs the
same code). A sender offers more than the highest rate (1500-byte IP packets at 28.8 Mbit/s),
so the link is always busy and what leaves it is its capacity. The trace's time 0 is when the
engine took the setting, which the receiver cannot see exactly (the impair call returns just
after it, late by however long the loaded machine takes to answer): the comparison uses the
offset within ±300 ms of the call's return that fits best, and reports it. A wrong alignment
cannot pass: the trace's rate changes fourfold and eightfold between seconds.
"""

from __future__ import annotations

import time

import pytest

from netbed.errors import AgentError
from netbed.host import Host, Router
from netbed.measure import SEQUENCE_RCVBUF_BYTES, arrivals_from, udp_pair
from netbed.traces import load

TRACE = "step-12-3-24-6mbit"
PAYLOAD_BYTES = 1472  # + 8 UDP + 20 IP = 1500, one opportunity each
IP_BYTES = 1500
RATE_PPS = 2400       # 28.8 Mbit/s, above the trace's 24
WINDOW_MS = 100


def test_throughput_follows_the_trace(client: Host, server: Host, router: Router) -> None:
    """Per 100 ms window, the delivered bytes are within 5% of what the trace allows, over the
    whole 4 s trace (its first window left out: the queue is still filling); the total within 1%.
    Skipped, saying why, when the sender could not offer its rate (then the link is not busy)."""
    if router.impair_status()["backend"] != "userspace":
        pytest.skip("trace-driven links run on the userspace engine only")
    trace = load(TRACE, "steps")
    router.upload_trace("steps", TRACE)
    pair = udp_pair(client, server, rcvbuf_bytes=SEQUENCE_RCVBUF_BYTES)
    seconds = trace.period_ms / 1000 + 0.5
    job = pair.rx.start_recv_sequence(duration_s=seconds + 15, idle_s=2.0)
    router.impair("trace steps limit 100000", direction="to-server")
    applied_ns = time.time_ns()  # the engine took the setting just before the call returned
    sent = pair.tx.send_sequence(int(seconds * RATE_PPS), size=PAYLOAD_BYTES, rate_pps=RATE_PPS,
                                 address=pair.address, timeout=seconds + 10)
    arrivals = arrivals_from(job.wait(timeout=seconds + 30)["arrivals"])
    router.clear()
    assert sent["errors"] == {}, sent
    if sent["duration_s"] > 1.05 * seconds:
        pytest.skip(f"the sender took {sent['duration_s']:.2f} s to offer {seconds:g} s of traffic: the link was "
                    "not kept busy, which the comparison needs (machine load)")
    windows = range(1, trace.period_ms // WINDOW_MS)

    def errors_at(offset_ms: int) -> list[float]:
        start = applied_ns + offset_ms * 1_000_000
        got = [0] * (trace.period_ms // WINDOW_MS)
        for a in arrivals:
            i = (a.recv_ns - start) // (WINDOW_MS * 1_000_000)
            if 0 <= i < len(got):
                got[i] += IP_BYTES
        return [got[i] / trace.delivered_bytes(i * WINDOW_MS, (i + 1) * WINDOW_MS) - 1 for i in windows]

    offset = min(range(-300, 301), key=lambda o: max(abs(e) for e in errors_at(o)))
    errors = errors_at(offset)
    worst = max(abs(e) for e in errors)
    assert worst <= 0.05, f"offset {offset} ms: per-window errors {[round(e, 3) for e in errors]}"
    delivered = sum(1 + e for e in errors)
    assert abs(delivered / len(errors) - 1) <= 0.01, delivered / len(errors)


def test_a_bad_trace_is_refused_by_name(router: Router) -> None:
    """The router refuses a trace with a decreasing timestamp naming its line, and a netem
    line naming a trace it never received, before anything changes."""
    with pytest.raises(AgentError, match="trace_put: trace bad:3: timestamp 1 ms is before"):
        router.call("trace_put", name="bad", text="1\n2\n1\n")
    with pytest.raises(AgentError, match="trace 'never-sent' has not been uploaded") as info:
        router.impair("trace never-sent")
    assert info.value.kind == "bad_netem"
    assert all(d["impairment"] is None for d in router.impair_status()["directions"].values())


