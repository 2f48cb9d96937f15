"""A failed `up` names why a host did not start: the host's last ERROR log line is appended to
compose's one-line error, and its last log lines follow (Docker SDK and compose faked)."""

from __future__ import annotations

from typing import Any

import pytest

from netbed.errors import ComposeError
from netbed.testbed import SERVICES, Testbed

ROUTER_LOG = (
    "2026-11-26 17:34:07,823 router INFO control interface eth0\n"
    "2026-11-26 17:34:07,981 router ERROR backend failed to start: RuntimeError: NETBED_BACKEND=kernel but "
    "kernel has no sch_netem (tc: Specified qdisc kind is unknown)\n"
    "Traceback (most recent call last):\n"
    "netbed_router.ops.BackendUnavailable: router not started: NETBED_BACKEND=kernel but kernel has no sch_netem\n"
)


class FakeContainer:
    def __init__(self, service: str, state: dict[str, Any], log: str = "") -> None:
        self.name = f"tb-{service}-1"
        self.status = "running" if state.get("Running") else "exited"
        self.labels = {"com.docker.compose.service": service}
        self.attrs = {"State": state}
        self.log = log

    def reload(self) -> None:
        pass

    def logs(self, tail: int = 20) -> bytes:
        return "\n".join(self.log.splitlines()[-tail:]).encode()


HEALTHY = {"Running": True, "Restarting": False, "Health": {"Status": "healthy"}}


class FakeContainers:
    def __init__(self, router_state: dict[str, Any]) -> None:
        self.router_state = router_state

    def list(self, all: bool = False, filters: object = None, ignore_removed: bool = False) -> list[FakeContainer]:
        return [FakeContainer(s, self.router_state if s == "router" else HEALTHY,
                              ROUTER_LOG if s == "router" else "agent ready") for s in SERVICES]


class FakeEngine:
    def __init__(self, router_state: dict[str, Any]) -> None:
        self.containers = FakeContainers(router_state)


class FailingCompose:
    def run(self, args: list[str], *, stream: bool = False) -> str:
        raise ComposeError("compose up failed (exit 1, project tb): container tb-router-1 is unhealthy")


def failing_testbed(router_state: dict[str, Any]) -> tuple[Testbed, list[str]]:
    tb = Testbed("tb", client=FakeEngine(router_state))  # type: ignore[arg-type]
    tb._env_extra["NETBED_BASE_IMAGE"] = "base"
    calls: list[str] = []
    tb.is_running = lambda: False  # type: ignore[method-assign]
    tb.create_networks = lambda: calls.append("networks")  # type: ignore[assignment,method-assign,return-value]
    tb.compose = lambda: FailingCompose()  # type: ignore[assignment,method-assign,return-value]
    tb.down = lambda: calls.append("down")  # type: ignore[method-assign]
    return tb, calls


@pytest.mark.parametrize("state", [
    {"Running": True, "Restarting": False, "Health": {"Status": "unhealthy"}},
    {"Running": False, "Restarting": False, "ExitCode": 1, "Health": {"Status": "unhealthy"}},
    {"Running": True, "Restarting": True, "Health": {"Status": "starting"}},
])
def test_a_failed_start_names_the_hosts_last_error_on_the_first_line(state: dict[str, Any]) -> None:
    tb, calls = failing_testbed(state)
    with pytest.raises(ComposeError) as info:
        tb.up(build=False)
    first, *rest = str(info.value).splitlines()
    assert first.startswith("compose up failed") and first.endswith(
        "; router: backend failed to start: RuntimeError: NETBED_BACKEND=kernel but kernel has no sch_netem "
        "(tc: Specified qdisc kind is unknown)")
    assert rest[0] == "--- last log lines of router ---" and "BackendUnavailable" in rest[-1]
    assert "client" not in first and "server" not in first  # healthy hosts are not blamed
    assert calls == ["networks", "down"]  # the failed start is torn down after the logs are read


def test_without_a_failed_host_the_compose_error_is_unchanged() -> None:
    tb, _ = failing_testbed(HEALTHY)
    with pytest.raises(ComposeError) as info:
        tb.up(build=False)
    assert str(info.value) == "compose up failed (exit 1, project tb): container tb-router-1 is unhealthy"
