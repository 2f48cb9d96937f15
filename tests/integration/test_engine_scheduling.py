"""The engine's worker thread reports the scheduling class it got, and the report matches what
the router's kernel shows; where real-time scheduling is refused (a Docker cgroup without a
real-time budget) the engine still forwards, and says why (docs/engine.md, "Scheduling")."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from netbed.host import Host, Router


def threads(router: Router, pid: int) -> list[dict[str, str]]:
    """The threads of ``pid`` in the router, as ``ps`` shows them: class (TS, FF), nice, RT priority."""
    code, out = router.exec(["ps", "-L", "-o", "tid=,cls=,ni=,rtprio=", "-p", str(pid)])
    assert code == 0, out
    return [dict(zip(("tid", "cls", "ni", "rtprio"), line.split(), strict=True)) for line in out.splitlines()]


def test_the_engine_reports_its_scheduling_and_forwards_whatever_it_got(client: Host, server: Host,
                                                                         router: Router) -> None:
    if router.impair_status()["backend"] != "userspace":
        pytest.skip("the kernel backend (sch_netem) runs no engine process")
    rx = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = rx.bind(("", 0))[1]
    tx = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with router.impair("delay 1ms", direction="to-server"):
        job = rx.start_recv_sequence(duration_s=10, idle_s=1.0)
        sent = client.call("send_sequence", fd=tx.fd, count=200, size=64, rate_pps=1000,
                           address=[server.ipv4, port])
        arrivals: list[list[Any]] = job.wait()["arrivals"]
        engine = router.impair_status()["directions"]["to-server"]["stats"]["engine_process"]
        seen = threads(router, engine["pid"])
        agent = threads(router, int(router.exec(["pgrep", "-o", "-f", "^python3 -m netbed_agent --role"])[1]))
    assert sent["sent"] == 200 and len(arrivals) == 200  # the engine runs, whatever its class
    sched = engine["scheduling"]
    text = sched["description"]
    classes = {t["cls"] for t in seen}
    if sched["policy"] == "fifo":
        assert text.startswith("real-time scheduling: SCHED_FIFO priority "), text
        assert "FF" in classes, seen
    else:
        assert text.startswith("real-time scheduling: refused: ") and sched["refused"], text
        assert classes == {"TS"}, seen  # SCHED_OTHER everywhere
        if sched["policy"] == "nice":
            assert str(sched["nice"]) in {t["ni"] for t in seen}, seen
    # The agent is never real-time; the engine's control thread neither.
    assert {t["cls"] for t in agent} == {"TS"}, agent
    assert seen[0]["cls"] == "TS", seen
