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
