"""Real-time scheduling of the engine's worker: what is asked for, the fallback, and the
reason a user reads in ``netbed status`` (the kernel calls are faked; see the netns test for
the real ones)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading

import pytest

from netbed_router import scheduling
from netbed_router.scheduling import Scheduling, cgroup_rt_runtime_us, has_cap_sys_nice, refusal_reason

STATUS_WITH_NICE = "Name:\tpython3\nCapEff:\t00000000a88425fb\n"  # Docker's default set + SYS_NICE
STATUS_WITHOUT_NICE = "Name:\tpython3\nCapEff:\t00000000a80425fb\n"


def files(mapping: dict[str, str]):  # type: ignore[no-untyped-def]
    return mapping.get


def test_cap_sys_nice_is_read_from_the_effective_set() -> None:
    assert has_cap_sys_nice(STATUS_WITH_NICE) is True
    assert has_cap_sys_nice(STATUS_WITHOUT_NICE) is False
    assert has_cap_sys_nice("Name:\tx\n") is None


def test_the_container_cgroup_without_a_real_time_budget_is_named() -> None:
    read = files({
        "/proc/self/cgroup": "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n0::/\n",
        "/proc/sys/kernel/sched_rt_runtime_us": "950000",
        "/sys/fs/cgroup/cpu/cpu.rt_runtime_us": "0",  # the container's own mount
    })
    assert cgroup_rt_runtime_us(read) == ("/docker/abc", 0)
    reason = refusal_reason(OSError(errno.EPERM, "Operation not permitted"), read, STATUS_WITH_NICE)
    assert reason.startswith("EPERM: cpu cgroup /docker/abc has cpu.rt_runtime_us 0")


def test_a_missing_capability_is_named_before_the_cgroup() -> None:
    read = files({"/proc/self/cgroup": "1:cpu:/docker/abc\n", "/sys/fs/cgroup/cpu/cpu.rt_runtime_us": "0"})
    reason = refusal_reason(OSError(errno.EPERM, "x"), read, STATUS_WITHOUT_NICE)
    assert reason == "EPERM: the router has no CAP_SYS_NICE (compose.yaml cap_add)"


def test_a_kernel_without_real_time_time_is_named() -> None:
    read = files({"/proc/sys/kernel/sched_rt_runtime_us": "0"})
    assert "sched_rt_runtime_us is 0" in refusal_reason(OSError(errno.EPERM, "x"), read, STATUS_WITH_NICE)


def test_other_errors_are_reported_by_name() -> None:
    assert refusal_reason(OSError(errno.EINVAL, "Invalid argument"), files({}), "") == "EINVAL: Invalid argument"


def fail_with(err: int):  # type: ignore[no-untyped-def]
    def call(*_args: object) -> None:
        raise OSError(err, os.strerror(err))

    return call


def test_refused_real_time_falls_back_to_nice_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    nice = {"value": 0}
    monkeypatch.setattr(os, "sched_setscheduler", fail_with(errno.EPERM))
    monkeypatch.setattr(os, "setpriority", lambda _w, _who, value: nice.update(value=value))
    monkeypatch.setattr(os, "getpriority", lambda _w, _who: nice["value"])
    monkeypatch.setattr(scheduling, "refusal_reason", lambda exc: "EPERM: cpu cgroup /x has cpu.rt_runtime_us 0")
    got = scheduling.request_realtime()
    assert (got.policy, got.nice) == ("nice", scheduling.FALLBACK_NICE)
    assert got.describe() == ("real-time scheduling: refused: EPERM: cpu cgroup /x has cpu.rt_runtime_us 0; "
                              f"fallback: SCHED_OTHER nice {scheduling.FALLBACK_NICE}")


def test_when_the_fallback_is_refused_too_both_reasons_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_setscheduler", fail_with(errno.EPERM))
    monkeypatch.setattr(os, "setpriority", fail_with(errno.EACCES))
    monkeypatch.setattr(os, "getpriority", lambda _w, _who: 0)
    monkeypatch.setattr(scheduling, "refusal_reason", lambda exc: "EPERM: no CAP_SYS_NICE")
    got = scheduling.request_realtime()
    assert got.policy == "normal"
    assert got.describe() == ("real-time scheduling: refused: EPERM: no CAP_SYS_NICE; "
                              f"fallback refused too (nice {scheduling.FALLBACK_NICE}: EACCES): SCHED_OTHER nice 0")


def test_granted_real_time_states_the_kernel_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(os, "sched_setscheduler", lambda pid, policy, param: calls.append(
        (pid, policy, param.sched_priority)))
    monkeypatch.setattr(os, "getpriority", lambda _w, _who: 0)
    monkeypatch.setattr(scheduling, "rt_throttle", lambda: "950000/1000000 µs")
    got = scheduling.request_realtime()
    assert calls == [(0, os.SCHED_FIFO, scheduling.REALTIME_PRIORITY)]  # 0: the calling thread only
    assert got.describe() == (f"real-time scheduling: SCHED_FIFO priority {scheduling.REALTIME_PRIORITY}; "
                              "bounded by RT throttling 950000/1000000 µs")


def test_not_requested_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_setscheduler", fail_with(errno.EPERM))
    got = scheduling.request_realtime(enabled=False)
    assert got == Scheduling("normal", nice=os.getpriority(os.PRIO_PROCESS, 0), requested=False)
    assert got.describe() == f"real-time scheduling: not requested (SCHED_OTHER nice {got.nice})"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_NICE) to change a thread's scheduling class")
def test_only_the_calling_thread_becomes_real_time_and_a_demoted_one_leaves_the_class() -> None:
    """Real kernel: the worker thread asks; the thread that started it stays SCHED_OTHER."""
    got: list[Scheduling] = []
    tid: list[int] = []
    policy_inside: list[int] = []
    done = threading.Event()

    def worker() -> None:
        tid.append(threading.get_native_id())
        got.append(scheduling.request_realtime())
        policy_inside.append(os.sched_getscheduler(0))
        done.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    try:
        while not policy_inside:
            t.join(0.01)
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        if got[0].policy != "fifo":
            pytest.skip(f"this machine refuses real-time scheduling: {got[0].describe()}")
        assert policy_inside == [os.SCHED_FIFO]
        demoted = scheduling.demote(tid[0], "demoted: test")
        assert os.sched_getscheduler(tid[0]) == os.SCHED_OTHER
        assert demoted.describe().startswith("real-time scheduling: refused: demoted: test; fallback")
    finally:
        done.set()
        t.join()


SPINNER = """
import json, os, resource, signal, threading
from types import SimpleNamespace
from netbed_router import scheduling
from netbed_router.engine_process import _demote_on_sigxcpu
worker = SimpleNamespace(tid=None, scheduling=None)
first = []
stop = threading.Event()
def spin():
    worker.tid = threading.get_native_id()
    worker.scheduling = scheduling.request_realtime()
    first.append(worker.scheduling.policy)
    while not stop.is_set():  # never sleeps, never blocks
        pass
demote = _demote_on_sigxcpu(worker)
handled = threading.Event()
def on_sigxcpu(sig, frame):
    demote(sig, frame)
    handled.set()
signal.signal(signal.SIGXCPU, on_sigxcpu)
resource.setrlimit(resource.RLIMIT_RTTIME, (100_000, 5_000_000))  # 0.1 s soft, 5 s hard
t = threading.Thread(target=spin, daemon=True)
t.start()
# Block without polling: a main thread that woke up often would make the spinner wait for the
# GIL, which is a sleep and restarts its RLIMIT_RTTIME count.  The handler runs in this thread.
handled.wait(3.0)
policy_now = os.sched_getscheduler(worker.tid)
stop.set()
t.join(2)
print(json.dumps({"first": first[0] if first else None, "refused": worker.scheduling.refused,
                  "sched_other": policy_now == os.SCHED_OTHER}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_NICE) to change a thread's scheduling class")
def test_a_spinning_real_time_worker_is_demoted_by_sigxcpu() -> None:
    """The bound on a runaway engine, on the real kernel: a SCHED_FIFO thread that never
    sleeps reaches RLIMIT_RTTIME's soft limit, the kernel sends SIGXCPU, and the engine
    process's handler (run by the control thread) takes the thread out of the real-time class.
    In a child process: the lowered hard limit cannot be raised again."""
    out = subprocess.run([sys.executable, "-c", SPINNER], capture_output=True, text=True, timeout=30, check=True)
    got = json.loads(out.stdout)
    if got["first"] != "fifo":
        pytest.skip(f"this machine refuses real-time scheduling ({got})")
    assert got["refused"].startswith("demoted:") and got["sched_other"], got
