"""The kernel impairment backend: Linux ``tc netem`` on the router's two interfaces.

Used where the kernel has ``sch_netem`` (stock Debian/Ubuntu, GitHub-hosted runners); where it
has not, the router uses :mod:`netbed_router.backend_userspace`. Both implement
:class:`netbed_router.backend.Backend`: ``apply(direction, spec, match)``, ``clear(direction)``,
``stats()``, ``close()``.
:func:`probe_kernel_netem` tells which one can be used here.

Directions: ``"to-server"`` is egress on the interface holding an address in the server subnet,
``"to-client"`` egress on the one in the client subnet. Interfaces are found by address, never
by name.

Without a match the direction's root qdisc is netem::

    tc qdisc replace dev IF root handle 10: netem ARGS          (10: and 11: alternate)

With a match (``{"proto": "udp", "port": 5000}``), a ``prio`` root sends everything to a
pristine band and u32 filters steer matching packets (IPv4 and IPv6, source *or* destination
port, like the userspace backend's ``-m multiport --ports``) to band 3, which holds netem::

    tc qdisc replace dev IF root handle 20: prio bands 3 priomap 1 1 ... 1  (20: and 21: alternate)
    tc qdisc replace dev IF parent 20:3 handle 30: netem ARGS
    tc filter add dev IF parent 20: protocol ip prio 1 u32 match ip protocol 17 0xff \
        match ip dport 5000 0xffff flowid 20:3                  (and sport, and ipv6)

Why the handles alternate: ``tc qdisc replace`` of a netem by a netem with the same handle is a
*change* that keeps every option the new arguments do not mention (measured on 6.1: a
``corrupt`` survives a later ``replace ... netem loss 5%``). A different handle makes the kernel
build a fresh qdisc and graft it in one step, so each apply is exactly what was asked, with no
moment without impairment. Two exceptions, each a moment (a few ms) of pristine forwarding:
with a match, until the new prio tree's netem and filters are in, matching packets take the
pristine band; and when the old or the new netem duplicates, Linux (6.1.y stable since 2025)
refuses to build a netem while the old tree holds one ("cannot mix duplicating netems with
other netems in tree"), so the old root is deleted first.

After each apply, ``tc -j qdisc show`` (and ``tc -j filter show``) are read back and compared
with the request; a difference raises :class:`ReadbackMismatch`. Counters restart at each apply.

Counters are what tc counts for the netem qdisc (``tc -s -j qdisc show``): packets and bytes sent,
drops, overlimits, requeues and the backlog. netem does not count what it duplicated, corrupted,
reordered, delayed or marked, so those ``DirectionStats`` counters are None (not measured).

Standard library only (the router image has python3, iproute2, iptables and ethtool).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from netbed_core.direction_stats import DirectionStats
from netbed_core.directions import DIRECTIONS
from netbed_core.netem import Netem, from_dict
from netbed_core.netem.iproute2 import tc_command_args

from .backend import Applied, Backend, BackendStats, DirectionReport, Runner, run_command
from .interfaces import InterfaceError, find_interfaces
from .match import normalize_match
from .tc_filters import NETEM_BAND, filter_commands, filter_specs
from .tc_readback import compare_netem_options, expected_netem_options

__all__ = [
    "DIRECTIONS",
    "KernelBackend",
    "KernelBackendError",
    "MEASURED",
    "ReadbackMismatch",
    "Runner",
    "compare_netem_options",
    "direction_stats",
    "expected_netem_options",
    "filter_commands",
    "probe_kernel_netem",
    "probe_reason",
]

#: IP protocols whose first 4 bytes after the IP header are source and destination port.
#: Root handles (major numbers) used without a match and with one; each pair alternates.
PLAIN_HANDLES = (0x10, 0x11)
PRIO_HANDLES = (0x20, 0x21)
NETEM_CHILD = {0x20: 0x30, 0x21: 0x31}
PRISTINE_PRIOMAP = ["1"] * 16  # every priority to band 2 (minor 2), pristine
DUPLICATE_CONFLICT = "cannot mix duplicating netems"

#: The counters tc keeps for a qdisc, as ``DirectionStats`` names; the others are None.
MEASURED: frozenset[str] = frozenset({"passed", "dropped", "queue_depth", "backlog_bytes", "overlimits",
                                      "requeues", "bytes_out"})


class KernelBackendError(RuntimeError):
    """A tc/ip command failed, or the kernel state is not what netbed expects."""


class ReadbackMismatch(KernelBackendError):
    """``tc -j qdisc show`` does not show what was applied."""


# ---------------------------------------------------------------------------------------------
# probe


def probe_reason(returncode: int, stderr: str) -> tuple[bool, str]:
    """Interpret ``tc qdisc add dev X root netem ...``'s result (pure; see probe_kernel_netem)."""
    msg = " ".join(stderr.split())
    if returncode == 0:
        return True, "kernel has sch_netem (tc qdisc add ... netem worked)"
    if "qdisc kind is unknown" in msg:
        return False, f"kernel has no sch_netem (tc: {msg.removeprefix('Error: ').rstrip('.')})"
    if "Operation not permitted" in msg or "permission" in msg.lower():
        return False, f"not allowed to change qdiscs, needs CAP_NET_ADMIN (tc: {msg})"
    return False, f"tc netem failed (exit {returncode}): {msg or 'no message'}"


def probe_kernel_netem(runner: Runner | None = None) -> tuple[bool, str]:
    """True if tc netem can be used here, with the reason either way.

    Adds netem to a throwaway dummy (else veth) interface in the current network namespace,
    then deletes the interface. Example reason: ``"kernel has no sch_netem (tc: Specified
    qdisc kind is unknown)"``.
    """
    run = runner or run_command
    name = f"nbprobe{os.getpid() % 10**8}"[:15]
    try:
        made = run(["ip", "link", "add", name, "type", "dummy"])
        if made.returncode != 0:
            made = run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name[:14]}p"])
        if made.returncode != 0:
            err = " ".join(made.stderr.split())
            return False, f"cannot create a throwaway interface to probe netem (ip: {err or 'failed'})"
        try:
            added = run(["tc", "qdisc", "add", "dev", name, "root", "netem", "delay", "1ms"])
            return probe_reason(added.returncode, added.stderr)
        finally:
            run(["ip", "link", "del", name])
    except FileNotFoundError as exc:
        return False, f"{exc.filename or 'ip/tc'} not found (iproute2 is not installed)"
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"cannot run ip/tc: {exc}"


def _loads(text: str) -> Any:
    """json.loads keeping tc's repeated ``"match"`` keys (u32 filters) as a list."""
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key == "match":
                out.setdefault("match", []).append(value)
            else:
                out[key] = value
        return out
    return json.loads(text or "[]", object_pairs_hook=hook)


def _major(handle: str | None) -> int | None:
    """``"10:"`` -> 0x10; None for a missing or zero handle."""
    if not handle:
        return None
    try:
        value = int(handle.split(":", 1)[0] or "0", 16)
    except ValueError:
        return None
    return value or None


def direction_stats(netem_q: Mapping[str, Any] | None, seed: int | None) -> DirectionStats:
    """The netem qdisc's tc counters (``tc -s -j qdisc show``) as a ``DirectionStats``: what tc
    counts, None for the rest. No netem qdisc (nothing applied): every measured counter is 0."""
    c = _counters(netem_q) or {}
    return DirectionStats.measuring(
        MEASURED, passed=c.get("sent_packets"), dropped=c.get("drops"), queue_depth=c.get("backlog_packets"),
        backlog_bytes=c.get("backlog_bytes"), overlimits=c.get("overlimits"), requeues=c.get("requeues"),
        bytes_out=c.get("sent_bytes"), seed=seed)


def _counters(q: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if q is None:
        return None
    return {
        "sent_packets": int(q.get("packets", 0)),
        "sent_bytes": int(q.get("bytes", 0)),
        "drops": int(q.get("drops", 0)),
        "overlimits": int(q.get("overlimits", 0)),
        "requeues": int(q.get("requeues", 0)),
        "backlog_bytes": int(q.get("backlog", 0)),
        "backlog_packets": int(q.get("qlen", 0)),
    }


# ---------------------------------------------------------------------------------------------
# the backend


class KernelBackend(Backend):
    """Impairments per direction with the kernel's netem qdisc (see the module docstring).

    ``runner`` runs each command (argument list) and is there for tests; ``offloads_off``
    turns GRO/GSO/TSO off on both interfaces (ethtool -K) so netem sees wire-sized packets.
    """

    name = "kernel"
    MEASURED = MEASURED

    def __init__(
        self,
        client_net4: str,
        server_net4: str,
        client_net6: str | None = None,
        server_net6: str | None = None,
        *,
        runner: Runner | None = None,
        offloads_off: bool = True,
    ) -> None:
        self._run_cmd: Runner = runner or run_command
        self.nets = {"client4": client_net4, "server4": server_net4, "client6": client_net6, "server6": server_net6}
        try:
            ifs = find_interfaces(self.nets, _loads(self._tc_out(["ip", "-j", "addr", "show"])))
        except InterfaceError as exc:
            raise KernelBackendError(str(exc)) from None
        self.client_if = ifs["client"]
        self.server_if = ifs["server"]
        self.offloads: dict[str, str] = {}
        if offloads_off:
            for dev in (self.client_if, self.server_if):
                self.offloads[dev] = self._offloads_off(dev)
        self._active: dict[str, dict[str, Any]] = {}
        self._closed = False

    # -- helpers ----------------------------------------------------------------------------------

    def _run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        try:
            return self._run_cmd(argv)
        except FileNotFoundError as exc:
            raise KernelBackendError(f"{argv[0]}: not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise KernelBackendError(f"{' '.join(argv)}: no answer in {exc.timeout}s") from exc

    def _tc_out(self, argv: Sequence[str]) -> str:
        r = self._run(argv)
        if r.returncode != 0:
            message = " ".join(r.stderr.split("Usage:", 1)[0].split())  # not tc's whole usage text
            raise KernelBackendError(f"`{' '.join(argv)}` failed (exit {r.returncode}): {message or 'no message'}")
        return r.stdout

    def _offloads_off(self, dev: str) -> str:
        try:
            r = self._run_cmd(["ethtool", "-K", dev, "gro", "off", "gso", "off", "tso", "off"])
        except FileNotFoundError:
            return "ethtool not installed"
        except (OSError, subprocess.SubprocessError) as exc:
            return f"ethtool failed: {exc}"
        return "ok" if r.returncode == 0 else (" ".join(r.stderr.split()) or f"exit {r.returncode}")

    def interface(self, direction: str) -> str:
        """The egress interface of ``direction``."""
        self.check_direction(direction)
        return self.server_if if direction == "to-server" else self.client_if

    def qdiscs(self, dev: str, *, stats: bool = False) -> list[dict[str, Any]]:
        """``tc -j [-s] qdisc show dev DEV``, parsed."""
        argv = ["tc", "-j", *(["-s"] if stats else []), "qdisc", "show", "dev", dev]
        result: list[dict[str, Any]] = _loads(self._tc_out(argv))
        return result

    @staticmethod
    def _root(qdiscs: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((q for q in qdiscs if q.get("root")), None)

    # -- apply / clear ----------------------------------------------------------------------------

    def apply(self, direction: str, spec: Mapping[str, Any], match: Mapping[str, Any] | None = None) -> Applied:
        """Impair ``direction`` with ``spec`` (netem dict form), only for packets matching ``match``
        (None: all). Replaces whatever was there; counters restart. Raises ``NetemError``
        (a ValueError) for a bad spec, ``ValueError`` for a bad match or direction,
        :class:`KernelBackendError` when tc fails and :class:`ReadbackMismatch` when the kernel
        does not show what was asked. ``Applied.details`` holds the interface, tc arguments, match
        and read-back (the netem ``options`` tc shows)."""
        self.check_direction(direction)
        if self._closed:
            raise KernelBackendError("backend is closed")
        netem = from_dict(dict(spec))
        m = normalize_match(match)
        dev = self.interface(direction)
        if netem.is_pristine:
            self.clear(direction)
            return Applied(direction, queued=False, seed=netem.seed,
                           details={"interface": dev, "tc_args": [], "match": m, "readback": None})
        args = tc_command_args(netem)  # to_tc_args with iproute2 bugs worked around
        current = _major((self._root(self.qdiscs(dev)) or {}).get("handle"))
        commands: list[list[str]]
        if m is None:
            root = PLAIN_HANDLES[1] if current == PLAIN_HANDLES[0] else PLAIN_HANDLES[0]
            commands = [["tc", "qdisc", "replace", "dev", dev, "root", "handle", f"{root:x}:", "netem", *args]]
        else:
            root = PRIO_HANDLES[1] if current == PRIO_HANDLES[0] else PRIO_HANDLES[0]
            commands = [
                ["tc", "qdisc", "replace", "dev", dev, "root", "handle", f"{root:x}:", "prio", "bands", "3",
                 "priomap", *PRISTINE_PRIOMAP],
                ["tc", "qdisc", "replace", "dev", dev, "parent", f"{root:x}:{NETEM_BAND:x}", "handle",
                 f"{NETEM_CHILD[root]:x}:", "netem", *args],
                *filter_commands(dev, root, m),
            ]
        self._active.pop(direction, None)
        try:
            try:
                self._tc_out(commands[0])
            except KernelBackendError as exc:
                if DUPLICATE_CONFLICT not in str(exc):
                    raise
                # Linux (6.1.y stable and later) refuses a netem beside a duplicating one in the
                # same tree, and the old tree is still there while the new root is built: remove
                # it first (a moment without impairment), then build the new one.
                self._delete_root(dev)
                self._tc_out(commands[0])
            for argv in commands[1:]:
                self._tc_out(argv)
            readback = self._verify(dev, netem, root, m)
        except KernelBackendError as exc:
            try:
                self._delete_root(dev)  # never leave half a configuration behind
            except KernelBackendError:
                pass  # report the first error
            if netem.seed is not None and "seed" in str(exc):
                raise KernelBackendError(f"{exc} (netem's seed needs Linux and iproute2 6.3 or later)") from exc
            raise
        self._active[direction] = {"spec": netem.to_dict(), "match": m}
        return Applied(direction, queued=True, seed=netem.seed,
                       details={"interface": dev, "tc_args": args, "match": m, "readback": readback})

    def _verify(self, dev: str, netem: Netem, root: int, match: Mapping[str, Any] | None) -> dict[str, Any]:
        qdiscs = self.qdiscs(dev)
        root_q = self._root(qdiscs)
        if root_q is None or _major(root_q.get("handle")) != root:
            raise ReadbackMismatch(f"{dev}: root qdisc is {root_q!r}, expected handle {root:x}:")
        if match is None:
            netem_q = root_q
        else:
            opts = root_q.get("options", {})
            if root_q.get("kind") != "prio" or opts.get("bands") != 3 or \
                    [str(p) for p in opts.get("priomap", [])] != PRISTINE_PRIOMAP:
                raise ReadbackMismatch(f"{dev}: root is not the expected prio (bands 3, all to band 2): {root_q}")
            parent = f"{root:x}:{NETEM_BAND:x}"
            child = next((q for q in qdiscs if q.get("parent") == parent), None)
            if child is None:
                raise ReadbackMismatch(f"{dev}: no qdisc under {parent}")
            netem_q = child
        if netem_q.get("kind") != "netem":
            raise ReadbackMismatch(f"{dev}: expected netem, found {netem_q.get('kind')!r}: {netem_q}")
        options = netem_q.get("options", {})
        problems = compare_netem_options(expected_netem_options(netem), options)
        if match is not None:
            problems += self._verify_filters(dev, root, match)
        if problems:
            raise ReadbackMismatch(f"{dev}: tc shows something else than what was applied: " + "; ".join(problems))
        return dict(options)

    def _verify_filters(self, dev: str, root: int, match: Mapping[str, Any]) -> list[str]:
        raw = _loads(self._tc_out(["tc", "-j", "filter", "show", "dev", dev, "parent", f"{root:x}:"]))
        flowid = f"{root:x}:{NETEM_BAND:x}"
        have = sorted(
            (f.get("protocol", ""), tuple(sorted((int(k["off"]), int(k["value"], 16), int(k["mask"], 16))
                                                 for k in f.get("options", {}).get("match", []))))
            for f in raw if f.get("options", {}).get("flowid") == flowid
        )
        want = sorted((family, tuple(sorted((k.off, k.value, k.mask) for k in keys)))
                      for family, _tokens, keys in filter_specs(match))
        if have != want:
            return [f"filters to {flowid}: asked {want}, kernel has {have}"]
        return []

    def _delete_root(self, dev: str) -> None:
        root_q = self._root(self.qdiscs(dev))
        if root_q is None or _major(root_q.get("handle")) is None:
            return  # the default qdisc: nothing of ours
        if root_q.get("kind") in ("netem", "prio") or _major(root_q.get("handle")) in (*PLAIN_HANDLES, *PRIO_HANDLES):
            r = self._run(["tc", "qdisc", "del", "dev", dev, "root"])
            if r.returncode != 0 and "No such file" not in r.stderr and "handle of zero" not in r.stderr:
                raise KernelBackendError(f"tc qdisc del dev {dev} root failed: {' '.join(r.stderr.split())}")

    def clear(self, direction: str) -> None:
        """Remove the direction's impairment: its interface gets the kernel's default qdisc back.
        Idempotent."""
        self.check_direction(direction)
        dev = self.interface(direction)
        self._active.pop(direction, None)
        self._delete_root(dev)
        left = [q for q in self.qdiscs(dev) if q.get("kind") in ("netem", "prio")]
        if left:
            raise KernelBackendError(f"{dev}: still has {left} after clearing")

    # -- stats / close ----------------------------------------------------------------------------

    def stats(self) -> BackendStats:
        """Per direction: the netem qdisc's counters (``tc -j -s qdisc show``) as ``DirectionStats``
        (None for what tc does not count), and in the details the raw counters of netem and of
        the root qdisc (a ``prio`` with a match)."""
        directions: dict[str, DirectionReport] = {}
        for direction in DIRECTIONS:
            dev = self.interface(direction)
            qdiscs = self.qdiscs(dev, stats=True)
            root_q = self._root(qdiscs)
            netem_q = next((q for q in qdiscs if q.get("kind") == "netem"), None)
            active = self._active.get(direction)
            root_counters = _counters(root_q)
            if root_q is not None and root_counters is not None:
                root_counters["kind"] = root_q.get("kind")
            seed = active["spec"].get("seed") if active else None
            directions[direction] = DirectionReport(
                active=netem_q is not None,
                spec=active["spec"] if active else None,
                match=active["match"] if active else None,
                counters=direction_stats(netem_q, seed),
                details={
                    "interface": dev,
                    "qdisc": None if netem_q is None else f"netem {netem_q.get('handle')} parent "
                                                          f"{netem_q.get('parent', 'root')}",
                    "netem": _counters(netem_q),
                    "root": root_counters,
                },
            )
        return BackendStats(
            backend=self.name,
            directions=directions,
            details={"interfaces": {"client": self.client_if, "server": self.server_if},
                     "offloads": dict(self.offloads)},
        )

    def close(self) -> None:
        """Clear both directions. Idempotent."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for direction in DIRECTIONS:
            try:
                self.clear(direction)
            except KernelBackendError as exc:
                errors.append(str(exc))
        if errors:
            raise KernelBackendError("; ".join(errors))
