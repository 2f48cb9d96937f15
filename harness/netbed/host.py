"""Host: one testbed container, reached through its agent."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from netbed_core.direction_stats import DirectionStats, total
from netbed_core.netem import Netem
from netbed_core.scenario import Scenario

from . import attach as attaching
from . import capture, impairment, owner
from . import scenario as scenarios
from .agent import AgentConnection, error_from_reply
from .attach import Attachment
from .capture import Capture
from .errors import AgentConnectionError, AgentError, CommandFailed, HostNotRunning, ProcessTimeout
from .impairment import Impairment
from .job import Job
from .process import Output, Process, RunResult
from .remote_socket import RemoteSocket, family_name, type_name
from .scenario import RunningScenario


class Host:
    """A testbed host: its name, data-plane addresses and agent connection."""

    def __init__(self, name: str, conn: AgentConnection, ipv4: str, ipv6: str,
                 container: Any = None) -> None:
        self.name = name
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.container = container
        self._conn = conn
        self._open: set[RemoteSocket] = set()
        self._processes: set[Process] = set()
        self._attachments: set[Attachment] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.ipv4} {self.ipv6}>"

    @property
    def control_port(self) -> int:
        """The host port (on 127.0.0.1) where this host's agent listens."""
        return self._conn.address[1]

    def address(self, family: int = socket.AF_INET) -> str:
        """This host's data-plane address for `family`."""
        return self.ipv6 if family == socket.AF_INET6 else self.ipv4

    def call(self, op: str, /, **args: Any) -> dict[str, Any]:
        """Send one raw agent request (see docs/agent-protocol.md)."""
        return self._conn.call(op, **{k: v for k, v in args.items() if v is not None})

    def socket(self, family: int | str = socket.AF_INET, type: int | str = socket.SOCK_STREAM,
               proto: int | str = 0) -> RemoteSocket:
        """Open a real socket on this host."""
        result = self.call("socket", family=family_name(family), type=type_name(type), proto=proto)
        sock = RemoteSocket(self, result["fd"], family, type)
        self.track(sock)
        return sock

    def track(self, sock: RemoteSocket) -> None:
        with self._lock:
            self._open.add(sock)

    def untrack(self, sock: RemoteSocket) -> None:
        with self._lock:
            self._open.discard(sock)

    def close_all_sockets(self) -> int:
        """Close every socket the agent holds (the per-test cleanup)."""
        with self._lock:
            for sock in self._open:
                sock.closed = True
            self._open.clear()
        return int(self.call("close_all")["closed"])

    def start(self, op: str, **args: Any) -> Job:
        """Start `op` in the background on the agent; returns a Job to wait on."""
        inner = {k: v for k, v in args.items() if v is not None}
        result = self.call("job_start", op=op, args=inner)
        return Job(self, result["job"], op)

    def ping(self) -> bool:
        return bool(self.call("ping")["pong"])

    def route_get(self, address: str) -> dict[str, Any]:
        """The kernel's route lookup for `address` (sends nothing)."""
        return self.call("route_get", address=address)

    def snmp(self) -> dict[str, dict[str, int]]:
        """Kernel protocol counters (/proc/net/snmp and snmp6), by protocol."""
        counters: dict[str, dict[str, int]] = self.call("snmp")["counters"]
        return counters

    def sysctl(self, name: str) -> str:
        return str(self.call("sysctl", name=name)["value"])

    def info(self) -> dict[str, Any]:
        return self.call("info")

    # -- programs (harness/netbed/process.py, the agent's proc_* operations) ----------
    @property
    def instance(self) -> str:
        """The testbed instance this host belongs to ("?" without a container handle)."""
        labels = getattr(self.container, "labels", None) or {}
        return str(labels.get("io.netbed.instance", "?"))

    def _proc_call(self, op: str, **args: Any) -> dict[str, Any]:
        try:
            return self.call(op, **args)
        except AgentConnectionError as exc:
            raise HostNotRunning(
                f"cannot run a program on {self.name} in testbed '{self.instance}': {exc}") from exc

    @staticmethod
    def _proc_args(argv: Sequence[str], input: bytes | None, env: Mapping[str, str] | None,
                   cwd: str | None) -> dict[str, Any]:
        # Sent as given: the agent checks the types and answers bad_request by name.
        args: dict[str, Any] = {"argv": list(argv) if isinstance(argv, list | tuple) else argv}
        if input is not None:
            if not isinstance(input, bytes | bytearray | memoryview):
                raise TypeError(f"input must be bytes, got {type(input).__name__}")
            args["input"] = base64.b64encode(bytes(input)).decode("ascii")
        if env is not None:
            args["env"] = dict(env) if isinstance(env, Mapping) else env
        if cwd is not None:
            args["cwd"] = cwd
        return args

    def run(self, argv: Sequence[str], *, timeout: float, input: bytes | None = None,
            env: Mapping[str, str] | None = None, cwd: str | None = None, check: bool = False,
            max_output: int | None = None) -> RunResult:
        """Run `argv` on this host to completion (no shell: pass ["sh", "-c", ...] for one).

        timeout: seconds (at most 600), enforced inside the host: the process group is
        killed and ProcessTimeout (a TimeoutError carrying the output so far) raised.
        env: variables added to (or replacing) the host's environment, verbatim.
        check: raise CommandFailed on a non-zero exit.  max_output: bytes kept per
        stream (default 1 MiB, the last ones; see RunResult.truncated).
        A missing program raises RemoteOSError (errno ENOENT) naming it.
        """
        args = self._proc_args(argv, input, env, cwd)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            # AgentConnection converts the timeout itself (for its reply deadline): answer
            # as the agent would, rather than with that conversion's ValueError.
            raise AgentError(self.name, "proc_run", "bad_request",
                             f"proc_run: argument 'timeout' must be a number, got {timeout!r}")
        reply = self._proc_call("proc_run", **args, timeout=timeout, max_output=max_output)
        out = Output.from_reply(reply)
        shown = list(args["argv"])
        if reply.get("timed_out"):
            raise ProcessTimeout(self.name, shown, float(timeout), out.stdout, out.stderr)
        result = RunResult(out.stdout, out.stderr, out.stdout_dropped_bytes, out.stderr_dropped_bytes,
                           argv=tuple(shown), returncode=int(reply["returncode"]),
                           duration_s=float(reply["duration_s"]), pid=int(reply["pid"]))
        if check and result.returncode != 0:
            raise CommandFailed(self.name, shown, result.returncode, result.stdout, result.stderr)
        return result

    def spawn(self, argv: Sequence[str], *, input: bytes | None = None, env: Mapping[str, str] | None = None,
              cwd: str | None = None, max_output: int | None = None) -> Process:
        """Start `argv` in the background on this host, in its own process group.

        The Process is killed (by group) on `kill()`, on leaving its `with` block, when
        this host's agent connection closes, and at the end of the test (pytest plugin).
        max_output: bytes kept per stream (default 1 MiB, the last ones).
        """
        args = self._proc_args(argv, input, env, cwd)
        reply = self._proc_call("proc_spawn", **args, max_output=max_output)
        proc = Process(self, int(reply["proc"]), int(reply["pid"]), list(args["argv"]))
        with self._lock:
            self._processes.add(proc)
        return proc

    @property
    def processes(self) -> list[Process]:
        """The processes spawned through this Host and not killed yet."""
        with self._lock:
            return sorted(self._processes, key=lambda p: p.handle)

    def untrack_process(self, proc: Process) -> None:
        with self._lock:
            self._processes.discard(proc)

    def kill_processes(self) -> int:
        """Kill (by process group) every process this host's connection started (per-test cleanup)."""
        with self._lock:
            for proc in self._processes:
                proc.closed = True
            self._processes.clear()
        return int(self.call("proc_close_all")["killed"])

    # -- your own images in this host's network namespace (attach.py) -------------
    def attach(self, image: str, command: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None,
               volumes: Any = None, name: str | None = None) -> Attachment:
        """Start a container of `image` (unchanged, local: never pulled) sharing this host's
        network namespace: its addresses, its routes, every packet through the router.

        command: argv replacing the image's CMD (no shell); env, volumes: as the Docker SDK
        takes them. Removed on `.stop()`, on leaving its `with` block, and at the end of the
        test (pytest plugin); labelled so `netbed down`/`clean` and the reaper find it.
        """
        attachment = attaching.start(self, image, command, env=env, volumes=volumes, name=name,
                                       owner=owner.current().label)
        with self._lock:
            self._attachments.add(attachment)
        return attachment

    @property
    def attachments(self) -> list[Attachment]:
        """The containers attached through this Host and not stopped yet."""
        with self._lock:
            return sorted(self._attachments, key=lambda a: a.name)

    def untrack_attachment(self, attachment: Attachment) -> None:
        with self._lock:
            self._attachments.discard(attachment)

    def stop_attachments(self) -> int:
        """Remove every container attached through this Host (per-test cleanup); returns how many."""
        stopping = self.attachments
        for attachment in stopping:
            attachment.stop()
        return len(stopping)

    def exec(self, argv: list[str], timeout: float = 60.0) -> tuple[int, str]:
        """Run a command; returns (exit code, stdout then stderr as text).

        Kept for existing callers; new code should use `run`, which keeps the
        streams apart.  Since `run` exists this no longer uses `docker exec`.
        """
        result = self.run(argv, timeout=timeout)
        return result.returncode, result.stdout_text + result.stderr_text

    def close(self) -> None:
        self._conn.close()


class Router(Host):
    """The router host: forwarding counters (and impairments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peers: Mapping[str, Host] = {}
        """The testbed's hosts by name (set by Testbed): what a scenario's host faults act on."""
        self._scenarios: list[RunningScenario] = []

    def counters(self) -> dict[str, Any]:
        """{"ipv4_forwarded": n, "ipv6_forwarded": n, "interfaces": {name: {...}}}."""
        return self.call("router_counters")

    def reset(self) -> None:
        """Return the router to pristine forwarding (no impairment, no scenario; hosts a
        scenario paused are resumed)."""
        try:
            while self._scenarios:
                running = self._scenarios.pop()
                if running.faults is not None:
                    running.faults.stop()
        finally:
            self.call("reset")

    def impair(self, netem: str | Netem, direction: str = "both", match: str | None = None) -> Impairment:
        """Impair forwarded traffic (netem's syntax, e.g. "delay 50ms 5ms loss 1%").

        direction: "both", "to-server" or "to-client"; match: "PROTO[:PORT]"
        (e.g. "udp:5000") to impair only those packets.  Active on return;
        use as a context manager to restore the previous setting on exit.
        """
        return impairment.apply(self, netem, direction, match)

    def clear(self, direction: str = "both") -> None:
        """Pristine forwarding for `direction` (both, to-server, to-client)."""
        self.call("clear", direction=direction)

    def impair_status(self) -> dict[str, Any]:
        """{"backend", "reason", "measured", "directions": {dir: {"impairment", "stats"}}, "engine"}."""
        return self.call("impair_status")

    def events(self, since: int | None = None) -> dict[str, Any]:
        """The router's impairment timeline (docs/agent-protocol.md, `events`): every impair,
        clear and reset with a seq above `since` (all it keeps for None), each direction's
        latest event, `next_seq`, `dropped` and `complete`; see netbed.timeline to read it."""
        return self.call("events", since=since)

    def impair_counters(self, status: dict[str, Any] | None = None) -> dict[str, DirectionStats]:
        """Per direction, what the router's backend counted since the impairment was applied
        (packets; a counter this backend cannot measure is None, see DirectionStats).
        `status`: an `impair_status()` reply already fetched."""
        status = self.impair_status() if status is None else status
        return {d: DirectionStats.from_dict(entry.get("stats") or {}) for d, entry in status["directions"].items()}

    # -- conditions over time (harness/netbed/scenario.py, docs/scenarios.md) -------------
    def scenario(self, steps: Sequence[Mapping[str, Any]] | Scenario, repeat: int = 1,
                 name: str = "") -> RunningScenario:
        """Start a scenario the router runs on its own clock: `steps` (each {"at" or
        "duration", "netem": line | "partition" | "clear", "direction", "match"}, or a host
        fault {"pause" | "resume" | "restart": "server"}, which the harness executes) `repeat`
        times (0: until stopped). A context manager: leaving it stops the scenario."""
        return self._start_scenario(steps, repeat, name)

    def _start_scenario(self, steps: Sequence[Mapping[str, Any]] | Scenario, repeat: int,
                        name: str) -> RunningScenario:
        targets = {n: h.container for n, h in self.peers.items() if h.container is not None}
        running = scenarios.start(self, steps, repeat, name, targets)
        self._scenarios = [*(s for s in self._scenarios if not s.stopped), running]
        return running

    def flap(self, up: str = "20s", down: str = "5s", repeat: int = 0, direction: str = "both",
             match: str | None = None) -> RunningScenario:
        """A link that goes down (a partition) for `down`, then heals for `up`, `repeat` times
        (0: until stopped). Established connections survive: nothing is sent to them."""
        return self._start_scenario(scenarios.flap_steps(up, down, direction, match), repeat, "flap")

    def ramp(self, what: str, start: str, end: str, over: str, steps: int = 10, direction: str = "both",
             match: str | None = None, extra: str = "") -> RunningScenario:
        """Move `what` (delay, loss, rate) from `start` to `end` in `steps` equal steps over `over`."""
        return self._start_scenario(scenarios.ramp_steps(what, start, end, over, steps, direction, match, extra),
                                    1, f"ramp {what}")

    def upload_trace(self, name: str, source: str) -> dict[str, Any]:
        """Send a link trace (Mahimahi's format: a file, or a bundled one such as
        "cellular-30s") to the router as `name`, for `impair("trace NAME")` (userspace backend)."""
        from . import traces  # only when used: most tests never replay a trace

        return traces.upload(self, name, source)

    def scenario_status(self) -> dict[str, Any]:
        """The router's current (or last) scenario: state, current step, timeline."""
        return self.call("scenario_status")

    def capture_start(self, *, direction: str = "both", ring_mb: int | None = None, decisions: bool = False,
                      max_seconds: float | None = None) -> Capture:
        """Capture both data interfaces into one pcapng (see ``netbed.capture``): ``direction``
        both, to-server or to-client; ``ring_mb`` the ring buffer (MB, default 64, newest
        kept); ``decisions`` the userspace engine's per-packet decision log too."""
        return capture.start(self, direction=direction, ring_mb=ring_mb, decisions=decisions,
                             max_seconds=max_seconds)

    def impair_totals(self) -> DirectionStats:
        """The router's counters summed over both directions (None: not measured by its backend)."""
        return total(self.impair_counters().values())


__all__ = ["Host", "Job", "Process", "Router", "RunResult", "error_from_reply"]
