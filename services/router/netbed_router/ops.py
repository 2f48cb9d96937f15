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
from typing import Any

from netbed_agent.args import Args
from netbed_agent.errors import RequestError
from netbed_agent.system import read_snmp, run_ip
from netbed_core import subnets
from netbed_core.directions import DIRECTIONS, expand
from netbed_core.netem import NetemError, from_dict, lint, parse
from netbed_core.netem.render import describe

from .backend import Backend
from .capture_ops import CaptureOps
from .match import parse_match

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
    spec = netem.to_dict()
    backend = _backend()
    with STATE.lock:
        for direction in directions:
            backend.apply(direction, spec, match)
            STATE.current[direction] = {"spec": spec, "match": match_text, "description": describe(netem)}
    return {"warnings": lint(netem), "directions": list(directions), "backend": STATE.backend_name}


def op_clear(args: Args) -> dict[str, Any]:
    """Return the named direction(s) to pristine forwarding."""
    directions = _directions(args)
    args.finish()
    backend = _backend()
    with STATE.lock:
        for direction in directions:
            backend.clear(direction)
            STATE.current[direction] = None
    return {"directions": list(directions)}


def op_reset(args: Args) -> dict[str, Any]:
    """Pristine forwarding in both directions and no capture (the harness calls it after
    every test and when a session starts, so a killed session's captures go too)."""
    args.finish()
    CAPTURES.discard_all()
    if STATE.backend is None:
        return {}  # nothing can have been applied
    backend = STATE.backend
    with STATE.lock:
        for direction in DIRECTIONS:
            backend.clear(direction)
            STATE.current[direction] = None
    return {}


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


OPS = {
    "router_counters": op_router_counters,
    "impair": op_impair,
    "clear": op_clear,
    "reset": op_reset,
    "impair_status": op_impair_status,
    **CAPTURES.ops(),
}
