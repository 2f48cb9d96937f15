"""A forced backend that cannot run stops the router agent with the reason (ops.setup); with
NETBED_BACKEND=auto the agent carries on without one."""

from __future__ import annotations

from typing import Any

import pytest

from netbed_router import backend_kernel, ops

NO_NETEM = "kernel has no sch_netem (tc: Specified qdisc kind is unknown)"


@pytest.fixture
def no_netem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_kernel, "probe_kernel_netem", lambda runner=None: (False, NO_NETEM))
    monkeypatch.setattr(ops, "STATE", ops.RouterState())


def test_choose_backend_forced_kernel_without_netem_names_sch_netem(no_netem: None) -> None:
    with pytest.raises(RuntimeError, match="NETBED_BACKEND=kernel but kernel has no sch_netem"):
        ops.choose_backend("kernel")


def test_setup_forced_kernel_without_netem_refuses_to_start(no_netem: None, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NETBED_BACKEND", "kernel")
    with pytest.raises(ops.BackendUnavailable, match="sch_netem"):
        ops.setup()
    assert ops.STATE.backend is None
    assert any("sch_netem" in r.getMessage() for r in caplog.records)


def test_setup_forced_userspace_that_cannot_start_refuses_too(no_netem: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from netbed_router import backend_userspace

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no interface holds an address in 10.77.0.0/24")

    monkeypatch.setattr(backend_userspace, "UserspaceBackend", broken)
    monkeypatch.setenv("NETBED_BACKEND", "userspace")
    with pytest.raises(ops.BackendUnavailable, match="no interface holds an address"):
        ops.setup()


def test_setup_auto_without_a_backend_keeps_answering(no_netem: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from netbed_router import backend_userspace

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("iptables is not installed")

    monkeypatch.setattr(backend_userspace, "UserspaceBackend", broken)
    monkeypatch.setenv("NETBED_BACKEND", "auto")
    ops.setup()  # no exception: forwarding still works
    assert ops.STATE.backend_name == "none" and "iptables is not installed" in ops.STATE.reason


def test_an_unknown_backend_name_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETBED_BACKEND", "netem")
    with pytest.raises(ops.BackendUnavailable, match="expected auto, kernel or userspace"):
        ops.setup()


def test_impair_that_tc_refuses_is_a_command_error_not_an_internal_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in the VM (issue #9): `seed` on the kernel backend with iproute2 6.1 made tc fail, and
    the agent answered `internal error KernelBackendError`; it is the command's failure, with tc's reason."""
    from netbed_agent.args import Args
    from netbed_agent.errors import RequestError

    class RefusingBackend:
        def apply(self, direction: str, spec: dict[str, Any], match: Any) -> None:
            raise backend_kernel.KernelBackendError(
                'tc failed: What is "seed"? (netem\'s seed needs Linux and iproute2 6.3 or later)')

    state = ops.RouterState()
    state.backend, state.backend_name = RefusingBackend(), "kernel"  # type: ignore[assignment]
    monkeypatch.setattr(ops, "STATE", state)
    with pytest.raises(RequestError) as caught:
        ops.op_impair(Args("impair", {"direction": "to-server", "netem": "loss 20% seed 42"}))
    assert caught.value.kind == "command_failed"
    assert "iproute2 6.3" in str(caught.value) and "to-server" in str(caught.value)
    assert state.current["to-server"] is None
