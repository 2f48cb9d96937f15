"""Operations the router agent adds to the common host agent.

Impairments arrive in netem's own words (`netem`: "delay 100ms loss 1%") or
as the parsed dict (`spec`, see docs/netem.md), are parsed once here with the
same parser the harness uses (netbed_core.netem), and go to one backend:

- kernel:    tc netem on the router's egress interfaces (where the kernel has sch_netem)
- userspace: the NFQUEUE engine (everywhere else)

chosen at start by probing, or forced with NETBED_BACKEND=kernel|userspace.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from netbed_agent.args import Args
from netbed_agent.errors import RequestError
from netbed_agent.system import read_snmp, run_ip
from netbed_core import subnets
from netbed_core.directions import DIRECTIONS, expand
from netbed_core.netem import Netem, NetemError, from_dict, lint, parse
from netbed_core.netem.render import describe, to_text

from .backend import Backend
from .capture_ops import CaptureOps
from .events import EventLog
from .match import parse_match
from .scenario_ops import SCENARIO, scenario_ops
from .trace_ops import TRACE_OPS, refuse_trace_on

log = logging.getLogger("netbed_agent")


class RouterState:
    """The backend in use and what each direction is set to."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.backend: Backend | None = None
        self.backend_name = "none"
        self.reason = "not started"
        self.current: dict[str, dict[str, Any] | None] = {d: None for d in DIRECTIONS}


STATE = RouterState()
#: Every impair, clear and reset, per direction (events.py; bounded).
EVENTS = EventLog()
CAPTURES = CaptureOps(STATE)


def _subnets() -> dict[str, str | None]:
    return {
        "client_net4": os.environ.get("NETBED_CLIENT_NET4", subnets.CLIENT_NET4),
        "server_net4": os.environ.get("NETBED_SERVER_NET4", subnets.SERVER_NET4),
        "client_net6": os.environ.get("NETBED_CLIENT_NET6") or None,
        "server_net6": os.environ.get("NETBED_SERVER_NET6") or None,
    }


def choose_backend(forced: str) -> tuple[str, str]:
    """(backend name, why) for NETBED_BACKEND=`forced` (auto, kernel, userspace)."""
    from .backend_kernel import probe_kernel_netem

    if forced == "userspace":
        return "userspace", "forced by NETBED_BACKEND=userspace"
    usable, why = probe_kernel_netem()
    if forced == "kernel":
        if not usable:
            raise RuntimeError(f"NETBED_BACKEND=kernel but {why}")
        return "kernel", "forced by NETBED_BACKEND=kernel"
    if usable:
        return "kernel", f"kernel has sch_netem ({why})"
    return "userspace", why


class BackendUnavailable(RuntimeError):
    """NETBED_BACKEND forces a backend that cannot run here: the router refuses to start."""


def setup() -> None:
    """Called once at agent start, after routes are configured.

    Raises BackendUnavailable when NETBED_BACKEND forces a backend (kernel, userspace) that
    cannot start: the agent then exits non-zero with the reason as its last log line, so
    `netbed up` fails instead of reporting a testbed that cannot impair.  With ``auto`` a
    failed backend leaves the agent answering (forwarding works; impair requests answer
    with the reason)."""
    leftovers = CAPTURES.captures.reap_leftovers()
    if leftovers:
        log.warning("killed %d tcpdump(s) an earlier agent left capturing", leftovers)
    forced = os.environ.get("NETBED_BACKEND", "auto")
    if forced not in ("auto", "kernel", "userspace"):
        raise BackendUnavailable(f"NETBED_BACKEND={forced!r}: expected auto, kernel or userspace")
    try:
        name, why = choose_backend(forced)
        if name == "kernel":
            from .backend_kernel import KernelBackend

            STATE.backend = KernelBackend(**_subnets())  # type: ignore[arg-type]
        else:
            from .backend_userspace import UserspaceBackend

            STATE.backend = UserspaceBackend(**_subnets())  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - the agent must keep answering (auto) or say why (forced)
        STATE.backend, STATE.backend_name = None, "none"
        STATE.reason = f"backend failed to start: {type(exc).__name__}: {exc}"
        log.error("%s", STATE.reason)
        if forced != "auto":
            raise BackendUnavailable(f"router not started: {exc}") from None
        # Forwarding still works; impair requests will answer with this reason.
        return
    STATE.backend_name, STATE.reason = name, why
    log.info("impairment backend: %s (%s)", name, why)


def _directions(args: Args) -> tuple[str, ...]:
    try:
        return expand(args.str("direction", "both"))
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def _refuse_during_scenario(op: str) -> None:
    running = SCENARIO.summary()
    if running is not None and running["state"] == "running":
        raise RequestError(f"{op}: scenario {running['name']!r} is running (step {running['step']}); "
                           "stop it first (scenario_stop, or reset)", kind="busy")


def _backend() -> Backend:
    if STATE.backend is None:
        raise RequestError(f"no impairment backend: {STATE.reason}", kind="command_failed")
    return STATE.backend


def op_impair(args: Args) -> dict[str, Any]:
    """Replace the impairment of the named direction(s); returns lint warnings."""
    directions = _directions(args)
    text = args.raw("netem")
    spec_in = args.raw("spec")
    match_text = args.raw("match")
    args.finish()
    if (text is None) == (spec_in is None):
        raise RequestError("impair: give exactly one of 'netem' (netem's words) or 'spec' (the parsed dict)")
    if match_text is not None and not isinstance(match_text, str):
        raise RequestError(f"impair: 'match' must be a string like 'udp:5000', got {match_text!r}")
    try:
        netem = parse(text) if text is not None else from_dict(spec_in)
    except NetemError as exc:
        raise RequestError(str(exc), kind="bad_netem") from None
    try:
        match = parse_match(match_text)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    _refuse_during_scenario("impair")
    refuse_trace_on(STATE.backend_name, netem, "impair")
    apply_directions(directions, netem, match_text, match, "impair")
    return {"warnings": lint(netem), "directions": list(directions), "backend": STATE.backend_name}


def apply_directions(directions: Sequence[str], netem: Netem, match_text: str | None, match: dict[str, Any] | None,
                     origin: str) -> None:
    """Set `netem` on each of `directions` (only packets `match` selects, when given) and record
    one timeline event per direction; `origin` names the request ("impair", "scenario:NAME")."""
    spec = netem.to_dict()
    backend = _backend()
    from .backend_kernel import KernelBackendError

    with STATE.lock:
        for direction in directions:
            try:
                applied = backend.apply(direction, spec, match)
            except KernelBackendError as exc:
                # tc refused what was asked (a seed with iproute2 before 6.3, ...): the request
                # failed and the backend removed the direction's half-built tree; not an
                # internal error of the agent, but the command's own, with its message.
                STATE.current[direction] = None
                raise RequestError(f"impair {direction}: {exc}", kind="command_failed") from None
            STATE.current[direction] = {"spec": spec, "match": match_text, "description": describe(netem)}
            seed = spec.get("seed")
            EVENTS.record("impair", direction, origin, spec=spec, netem=to_text(netem), description=describe(netem),
                          match=match_text, seed=seed if isinstance(seed, int) else applied.seed)


def schedule_directions(directions: Sequence[str], netem: Netem | None, match: dict[str, Any] | None,
                        at_ns: int) -> dict[str, int] | None:
    """Hand each of `directions` the setting `netem` (None: clear) for its engine to switch to by
    itself at `at_ns` (time.monotonic_ns; backend_userspace.schedule). Per direction the seed in
    use; None when the backend cannot for some direction (the kernel backend, a match): nothing
    was handed over, the caller applies the step at its time."""
    backend = _backend()
    can = getattr(backend, "can_schedule", None)
    if can is None:
        return None
    spec = netem.to_dict() if netem is not None else None
    with STATE.lock:
        if not all(can(direction, match) for direction in directions):
            return None
        seeds: dict[str, int] = {}
        for direction in directions:
            applied = backend.schedule(direction, spec, match, at_ns)  # type: ignore[attr-defined]
            if applied is None:  # it could a moment ago, under the same lock: a bug
                raise RuntimeError(f"{direction}: the backend refused a step it accepted")
            seeds[direction] = applied.seed
            STATE.current[direction] = None if netem is None else {
                "spec": spec, "match": None, "description": describe(netem)}
        return seeds


def confirm_directions(directions: Sequence[str], netem: Netem | None, seeds: dict[str, int], origin: str,
                       timeout_s: float) -> int | None:
    """Wait up to `timeout_s` for each direction's engine to take the setting handed over by
    `schedule_directions`, and record one timeline event each. The latest switch time
    (monotonic ns), or None when some direction did not report one."""
    backend = _backend()
    times: list[int | None] = []
    for direction in directions:
        times.append(backend.wait_switched(direction, timeout_s))  # type: ignore[attr-defined]
        if netem is None:
            EVENTS.record("clear", direction, origin)
        else:
            spec = netem.to_dict()
            seed = spec.get("seed")
            EVENTS.record("impair", direction, origin, spec=spec, netem=to_text(netem), description=describe(netem),
                          match=None, seed=seed if isinstance(seed, int) else seeds.get(direction))
    known = [t for t in times if t is not None]
    return max(known) if len(known) == len(times) else None


def clear_directions(directions: Sequence[str], origin: str) -> None:
    """Pristine forwarding on each of `directions`, one timeline event each; `origin` names the
    request ("clear", "reset", "scenario:NAME")."""
    backend = _backend()
    with STATE.lock:
        for direction in directions:
            backend.clear(direction)
            STATE.current[direction] = None
            EVENTS.record("clear", direction, origin)


def op_clear(args: Args) -> dict[str, Any]:
    """Return the named direction(s) to pristine forwarding."""
    directions = _directions(args)
    args.finish()
    _refuse_during_scenario("clear")
    clear_directions(directions, "clear")
    return {"directions": list(directions)}


def op_reset(args: Args) -> dict[str, Any]:
    """Pristine forwarding in both directions and no capture (the harness calls it after
    every test and when a session starts, so a killed session's captures go too)."""
    args.finish()
    stopped = SCENARIO.stop_running()  # its steps must not outlive the test that started it
    CAPTURES.discard_all()
    if STATE.backend is None:
        return {}  # nothing can have been applied
    clear_directions(DIRECTIONS, "reset")
    return {"scenario_stopped": stopped} if stopped else {}


def op_impair_status(args: Args) -> dict[str, Any]:
    """Backend, the reason it was chosen, and per direction: setting and counters.

    ``directions[d]["stats"]`` is the backend's ``DirectionReport.to_dict()``: the counters of
    ``netbed_core.direction_stats.DirectionStats`` (null where this backend cannot measure one,
    listed in ``not_measured``) and the backend's own details."""
    args.finish()
    backend = _backend()
    stats = backend.stats().to_dict()
    per_direction = stats.get("directions", {})
    return {
        "backend": STATE.backend_name,
        "reason": STATE.reason,
        "measured": sorted(backend.MEASURED),
        "directions": {d: {"impairment": STATE.current[d], "stats": per_direction.get(d, {})} for d in DIRECTIONS},
        "engine": {k: v for k, v in stats.items() if k != "directions"},
        "scenario": SCENARIO.summary(),
    }


def op_router_counters(args: Args) -> dict[str, Any]:
    """Forwarded datagrams (IPv4, IPv6) and per-interface state and counters."""
    args.finish()
    snmp = read_snmp()
    interfaces = {}
    for link in run_ip("-s", "link", "show"):
        stats = link.get("stats64", {})
        interfaces[link["ifname"]] = {
            "state": link.get("operstate"),
            "mtu": link.get("mtu"),
            "rx_packets": stats.get("rx", {}).get("packets"),
            "tx_packets": stats.get("tx", {}).get("packets"),
            "rx_bytes": stats.get("rx", {}).get("bytes"),
            "tx_bytes": stats.get("tx", {}).get("bytes"),
        }
    return {
        "ipv4_forwarded": snmp.get("Ip", {}).get("ForwDatagrams", 0),
        "ipv6_forwarded": snmp.get("Ip6", {}).get("OutForwDatagrams", 0),
        "interfaces": interfaces,
    }


def op_events(args: Args) -> dict[str, Any]:
    """The impairment timeline: events with a seq above `since` (every kept one without it),
    each direction's latest event, and the log's bound (events.py)."""
    since = args.opt_int("since", minimum=0)
    args.finish()
    reply = EVENTS.since(since)
    reply["backend"] = STATE.backend_name
    return reply


OPS = {
    "router_counters": op_router_counters,
    "impair": op_impair,
    "clear": op_clear,
    "reset": op_reset,
    "impair_status": op_impair_status,
    "events": op_events,
    **scenario_ops(apply_directions, clear_directions, _backend, schedule_directions, confirm_directions),
    **TRACE_OPS,
    **CAPTURES.ops(),
}
