"""The router recovers: a killed engine process is restarted with its impairment re-applied
(same spec, match, seed), and a killed router agent comes back through the container's
restart policy (compose.yaml) with the harness reconnecting."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from netbed.errors import NetbedError
from netbed.host import Host, Router
from netbed.measure import delivery
from netbed_core.netem import parse
from netbed_router.engine import Engine, EngineConfig

#: How soon the agent must notice a dead engine process (s): it waits on the process.
ENGINE_NOTICE_BOUND_S = 1.0
#: How long a new engine process may take to be running with its impairment (s): a Python
#: start-up, which takes seconds when the 2 CPUs are shared with other test suites.
ENGINE_RESTART_BOUND_S = 15.0
#: How long the router container may take to come back after its agent is killed (s):
#: Docker's first restart delay (0.1 s), netinit, the backend probe, the agent binding.
AGENT_RESTART_BOUND_S = 30.0


def run_sequence(sender: Host, receiver: Host, count: int, rate_pps: float) -> list[list[Any]]:
    rx = receiver.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt("SOL_SOCKET", "SO_RCVBUF", 4 << 20)
    port = rx.bind(("", 0))[1]
    tx = sender.socket(socket.AF_INET, socket.SOCK_DGRAM)
    job = rx.start_recv_sequence(duration_s=10, idle_s=1.0)
    sent = sender.call("send_sequence", fd=tx.fd, count=count, size=64, rate_pps=rate_pps,
                       address=[receiver.ipv4, port])
    assert sent["sent"] == count
    arrivals: list[list[Any]] = job.wait()["arrivals"]
    return arrivals


@pytest.fixture
def engine_router(router: Router) -> Router:
    """The router, when its backend is the userspace engine (skipped on the kernel backend,
    where the kernel's netem qdisc does the work and no engine process exists)."""
    backend = router.impair_status()["backend"]
    if backend != "userspace":
        pytest.skip(f"the {backend} backend runs no engine process (only the userspace backend has one)")
    return router


def engine_process(router: Router, direction: str = "to-server") -> dict[str, Any]:
    info: dict[str, Any] = router.impair_status()["directions"][direction]["stats"]["engine_process"]
    return info


def test_the_engine_runs_in_its_own_process(engine_router: Router) -> None:
    router = engine_router
    with router.impair("loss 1%", direction="both"):
        pids = {d: engine_process(router, d)["pid"] for d in ("to-server", "to-client")}
        # Not anchored at "python3": a netns testbed's agents run under the harness's interpreter.
        agent_pids = router.exec(["pgrep", "-f", "--", "-m netbed_agent --role"])[1].split()
        assert agent_pids
        assert pids["to-server"] != pids["to-client"]
        for d, pid in pids.items():
            code, args = router.exec(["ps", "-o", "args=", "-p", str(pid)])
            assert code == 0 and "netbed_router.engine_process" in args and d in args, args
            assert str(pid) not in agent_pids


def test_a_killed_engine_is_restarted_and_the_impairment_reapplied(client: Host, server: Host,
                                                                    engine_router: Router) -> None:
    router = engine_router
    text = "loss 30% seed 4242"
    with router.impair(text, direction="to-server"):
        before = engine_process(router)
        code, out = router.exec(["kill", "-9", str(before["pid"])])
        assert code == 0, out
        killed = time.monotonic()
        while True:
            after = engine_process(router)
            if after["restarts"] > before["restarts"]:
                break
            assert time.monotonic() - killed < ENGINE_NOTICE_BOUND_S, f"death not noticed: {after}"
            time.sleep(0.02)
        assert after["last_exit"] == "killed by SIGKILL", after
        while not (after["running"] and after["pid"] != before["pid"] and after["reapplied"]):
            assert time.monotonic() - killed < ENGINE_RESTART_BOUND_S, f"not restarted: {after}"
            time.sleep(0.05)
            after = engine_process(router)
        assert after["pid"] != before["pid"]
        assert after["last_exit"] == "killed by SIGKILL" and after["reapplied"] is True, after
        status = router.impair_status()["directions"]["to-server"]
        assert status["stats"]["active"] is True and status["stats"]["seed"] == 4242
        # Same seed, direction and packets: the restarted engine loses exactly what an offline
        # engine predicts, so the spec and seed really were re-applied, not just reported.
        n = 1000
        lost = delivery(run_sequence(client, server, n, 2000), n).lost_seqs
        offline = Engine(EngineConfig.from_dict(parse(text).to_dict()), stream=0)
        predicted = [i for i in range(n) if not offline.on_packet(i, b"", 92, 0)]
        assert sorted(lost) == predicted
        stats = router.impair_status()["directions"]["to-server"]["stats"]
        assert stats["seen"] == n and stats["dropped_by_cause"]["loss"] == len(predicted)


@pytest.mark.needs_docker("the router container's restart policy")
def test_a_killed_router_agent_comes_back(client: Host, server: Host, router: Router) -> None:
    agent = router.exec(["pgrep", "-f", "^python3 -m netbed_agent --role"])[1].split()
    assert len(agent) == 1, agent
    # Through Docker, not the agent: a program the agent runs could not report back once its
    # parent, the agent, is killed (the call would fail with a broken connection).
    assert router.container.exec_run(["kill", "-9", agent[0]]).exit_code == 0
    t0 = time.monotonic()
    while True:
        try:
            router.ping()
            break
        except NetbedError as exc:
            assert time.monotonic() - t0 < AGENT_RESTART_BOUND_S, f"router not back: {exc}"
            time.sleep(0.2)
    elapsed = time.monotonic() - t0
    router.container.reload()
    assert router.container.attrs["RestartCount"] >= 1
    # it forwards and impairs again
    with router.impair("partition", direction="to-server"):
        assert delivery(run_sequence(client, server, 100, 1000), 100).lost == 100
    assert delivery(run_sequence(client, server, 100, 1000), 100).lost == 0, f"back after {elapsed:.1f} s"
