"""NETBED_BACKEND=kernel on a kernel without sch_netem: `up` fails, and its error names the
reason (the router's last ERROR log line), instead of reporting a testbed that cannot impair.
Everything the throwaway instance created is removed by label afterwards."""

from __future__ import annotations

import time

import pytest
from inner_session import new_instance

from netbed import docker_api, owner
from netbed.errors import NetbedError
from netbed.testbed import Testbed

#: Bound on the failed start: the router exits at once, and at most 5 restarts
#: (compose.yaml) with Docker's doubling delay follow; compose's own wait is 60 s.
FAIL_BOUND_S = 60.0


@pytest.mark.integration
def test_forced_kernel_backend_without_netem_fails_up_naming_sch_netem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETBED_CLIENT_NET4", raising=False)  # a free subnet pair beside ours
    monkeypatch.setenv("NETBED_BACKEND", "kernel")
    client = docker_api.connect()
    tb = Testbed(new_instance("rp-kfail"), client=client, owner=owner.current().label)
    t0 = time.monotonic()
    try:
        try:
            tb.up()
        except NetbedError as exc:
            message = str(exc)
        else:
            backend = tb.router.impair_status()["backend"]
            assert backend == "kernel", f"forced kernel backend came up as {backend!r}"
            pytest.skip("this kernel has sch_netem: the forced kernel backend runs")
        elapsed = time.monotonic() - t0
        first_line = message.splitlines()[0]
        assert "router: " in first_line and "NETBED_BACKEND=kernel" in first_line, message
        assert "sch_netem" in first_line, message
        assert elapsed < FAIL_BOUND_S + 30, f"failed only after {elapsed:.0f} s"
        # a failed start tears down what it created
        assert not any(docker_api.leftovers(client, tb.instance).values())
    finally:
        docker_api.remove_by_label(client, tb.instance)
