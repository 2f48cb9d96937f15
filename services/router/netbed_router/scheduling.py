"""The scheduling class of an engine's worker thread: real-time when the kernel permits it,
else a raised nice value, and always the reason.

A CPU-bound neighbour (a build, a test suite) shares the CPU with the engine.  Under
SCHED_OTHER the engine waits its turn behind it, which stretches the delay a user asked
for (issue #13: added p99 2.3 ms beside two busy neighbours).  A real-time thread preempts
SCHED_OTHER work as soon as its packet arrives, which is what a real-time class is for.

What is asked for, in order:

1. ``SCHED_FIFO`` at ``REALTIME_PRIORITY`` (10: above every SCHED_OTHER task, below the
   kernel's own real-time threads, which use 50 and up).  Needs CAP_SYS_NICE and a real-time
   budget in the thread's cpu cgroup.  Docker gives each container ``cpu.rt_runtime_us`` 0
   unless the daemon runs with ``--cpu-rt-runtime``, so in a container this is usually
   refused with EPERM even with CAP_SYS_NICE.
2. The fallback: SCHED_OTHER with nice ``FALLBACK_NICE`` (-10: a neighbour at nice 0 then gets
   about a tenth of the engine's CPU share when both want the CPU).  Needs CAP_SYS_NICE.
3. Otherwise the thread stays as it was, and the reason says why.

Only the calling thread changes (Linux schedules threads, and ``sched_setscheduler(0)`` and
``setpriority(PRIO_PROCESS, 0)`` act on the calling thread): the engine process's control
thread and the router agent stay SCHED_OTHER, so the agent is never real-time.

A runaway engine must not starve the agent.  Two bounds, both the kernel's:

* RT throttling: ``/proc/sys/kernel/sched_rt_runtime_us`` (950000 of every 1000000 µs by
  default) caps real-time threads at 95% of each CPU; the rest is left to SCHED_OTHER work,
  the agent included.  ``describe`` states the value in force.
* ``RLIMIT_RTTIME``: a real-time thread that runs ``RT_BUDGET_US`` of CPU without sleeping
  gets SIGXCPU; the engine process then demotes its worker to the fallback
  (``demote``), and the kernel kills the process at the hard limit if that did not happen
  (the supervisor restarts it).  The worker sleeps on purpose at least every
  ``worker.RT_SLEEP_EVERY_NS`` while busy, so only a thread stuck in a loop reaches the limit.

Standard library only.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

#: SCHED_FIFO priority of an engine worker (1..99; kernel threads use 50 and up).
REALTIME_PRIORITY = 10
#: Nice value of the fallback (-20..19; lower is more CPU).
FALLBACK_NICE = -10
#: CPU time (µs) a real-time worker may use without sleeping before SIGXCPU (RLIMIT_RTTIME soft).
RT_BUDGET_US = 500_000
#: ... and before the kernel kills its process (RLIMIT_RTTIME hard).
RT_KILL_US = 2_000_000

CAP_SYS_NICE = 23


@dataclass(frozen=True)
class Scheduling:
    """What one worker thread got.

    policy: ``"fifo"`` (SCHED_FIFO), ``"nice"`` (SCHED_OTHER with ``nice``), or ``"normal"``
    (unchanged); priority: the SCHED_FIFO priority, else None; nice: the nice value now;
    refused: why real-time scheduling was refused (None when granted or not requested);
    fallback_refused: why the nice fallback was refused too, else None;
    rt_throttle: the kernel's RT bound, ``"950000/1000000 µs"`` (runtime/period), or None.
    """

    policy: str
    priority: int | None = None
    nice: int | None = None
    refused: str | None = None
    fallback_refused: str | None = None
    rt_throttle: str | None = None
    requested: bool = True

    def describe(self) -> str:
        """One line for ``netbed status``, starting ``real-time scheduling:``."""
        if not self.requested:
            return f"real-time scheduling: not requested (SCHED_OTHER nice {self.nice})"
        if self.policy == "fifo":
            bound = f"; bounded by RT throttling {self.rt_throttle}" if self.rt_throttle else ""
            return f"real-time scheduling: SCHED_FIFO priority {self.priority}{bound}"
        text = f"real-time scheduling: refused: {self.refused}"
        if self.policy == "nice":
            return f"{text}; fallback: SCHED_OTHER nice {self.nice}"
        return f"{text}; fallback refused too ({self.fallback_refused}): SCHED_OTHER nice {self.nice}"

    def to_dict(self) -> dict[str, object]:
        return {"policy": self.policy, "priority": self.priority, "nice": self.nice,
                "refused": self.refused, "fallback_refused": self.fallback_refused,
                "rt_throttle": self.rt_throttle, "requested": self.requested,
                "description": self.describe()}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def has_cap_sys_nice(status_text: str | None = None) -> bool | None:
    """CAP_SYS_NICE in this process's effective set (from /proc/self/status), None if unknown."""
    text = status_text if status_text is not None else _read("/proc/self/status")
    for line in (text or "").splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_NICE & 1)
    return None


def cgroup_rt_runtime_us(read: Callable[[str], str | None] = _read) -> tuple[str, int] | None:
    """(cgroup path, cpu.rt_runtime_us) of this process's cgroup-v1 cpu controller, or None
    (cgroup v2 has no real-time budget per group).  In a container the controller is
    mounted at the container's own cgroup, so the mount root is tried after the full path."""
    path = None
    for line in (read("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and "cpu" in parts[1].split(","):
            path = parts[2]
    if path is None:
        return None
    for candidate in (f"/sys/fs/cgroup/cpu{path}", "/sys/fs/cgroup/cpu"):
        value = read(f"{candidate.rstrip('/')}/cpu.rt_runtime_us")
        if value is not None and value.lstrip("-").isdigit():
            return path, int(value)
    return None


def refusal_reason(err: OSError, read: Callable[[str], str | None] = _read,
                   status_text: str | None = None) -> str:
    """Why sched_setscheduler(SCHED_FIFO) failed, in words a user can act on."""
    name = errno.errorcode.get(err.errno or 0, str(err.errno))
    if err.errno != errno.EPERM:
        return f"{name}: {err.strerror}"
    if has_cap_sys_nice(status_text) is False:
        return "EPERM: the router has no CAP_SYS_NICE (compose.yaml cap_add)"
    global_rt = read("/proc/sys/kernel/sched_rt_runtime_us")
    if global_rt == "0":
        return "EPERM: kernel.sched_rt_runtime_us is 0 (no real-time time at all)"
    group = cgroup_rt_runtime_us(read)
    if group is not None and group[1] == 0:
        return (f"EPERM: cpu cgroup {group[0]} has cpu.rt_runtime_us 0 (no real-time budget; "
                "Docker grants one only with the daemon's --cpu-rt-runtime and the container's "
                "cpu_rt_runtime)")
    return "EPERM: not permitted (CAP_SYS_NICE present; RLIMIT_RTPRIO or a security policy?)"


def rt_throttle(read: Callable[[str], str | None] = _read) -> str | None:
    runtime = read("/proc/sys/kernel/sched_rt_runtime_us")
    period = read("/proc/sys/kernel/sched_rt_period_us")
    if runtime is None or period is None:
        return None
    return f"{runtime}/{period} µs" if runtime != "-1" else f"off (-1: unbounded) per {period} µs"


#: What ``request`` accepts: real-time with the fallback, the fallback alone, or nothing.
MODES = ("realtime", "nice", "normal")


def request(mode: str) -> Scheduling:
    """The calling thread's class for ``mode`` (one of MODES): ``realtime`` as
    ``request_realtime``; ``nice`` the fallback alone (what a Docker router without a real-time
    budget gets, measurable where real-time would be granted); ``normal`` unchanged."""
    if mode == "realtime":
        return request_realtime()
    if mode == "nice":
        try:
            os.setpriority(os.PRIO_PROCESS, 0, FALLBACK_NICE)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            return Scheduling("normal", nice=os.getpriority(os.PRIO_PROCESS, 0), requested=False,
                              fallback_refused=f"nice {FALLBACK_NICE}: {name}")
        return Scheduling("nice", nice=os.getpriority(os.PRIO_PROCESS, 0), requested=False)
    if mode == "normal":
        return request_realtime(enabled=False)
    raise ValueError(f"scheduling: expected one of {', '.join(MODES)}, got {mode!r}")


def request_realtime(*, enabled: bool = True, priority: int = REALTIME_PRIORITY,
                     nice: int = FALLBACK_NICE) -> Scheduling:
    """Make the calling thread SCHED_FIFO ``priority``, else nice ``nice``; say what happened.

    With ``enabled`` False the thread is left as it is (the bench's "without" figure)."""
    current_nice = os.getpriority(os.PRIO_PROCESS, 0)
    if not enabled:
        return Scheduling("normal", nice=current_nice, requested=False)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        reason = refusal_reason(exc)
    else:
        return Scheduling("fifo", priority=priority, nice=current_nice, rt_throttle=rt_throttle())
    return _fallback(reason, nice)


def _fallback(reason: str, nice: int) -> Scheduling:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return Scheduling("normal", nice=os.getpriority(os.PRIO_PROCESS, 0), refused=reason,
                          fallback_refused=f"nice {nice}: {name}")
    return Scheduling("nice", nice=os.getpriority(os.PRIO_PROCESS, 0), refused=reason)


def limit_rt_time() -> None:
    """RLIMIT_RTTIME for this process (the bound on a runaway real-time thread).  Install a
    SIGXCPU handler first: the default action of SIGXCPU kills the process."""
    import resource  # noqa: PLC0415 - Unix only, like the rest of the router

    try:
        resource.setrlimit(resource.RLIMIT_RTTIME, (RT_BUDGET_US, RT_KILL_US))
    except (OSError, ValueError):
        pass  # the RT throttling bound still holds


def demote(tid: int, reason: str, nice: int = FALLBACK_NICE) -> Scheduling:
    """Take thread ``tid`` out of the real-time class (SIGXCPU: it ran RT_BUDGET_US without
    sleeping).  SCHED_OTHER, then the nice fallback when permitted."""
    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    try:
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:
        return Scheduling("normal", nice=os.getpriority(os.PRIO_PROCESS, tid), refused=reason,
                          fallback_refused=f"nice {nice}: EPERM")
    return Scheduling("nice", nice=nice, refused=reason)
