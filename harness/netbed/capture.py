"""Packet capture at the router, from Python: ``router.capture_start()``.

    cap = router.capture_start(decisions=True)      # both data interfaces, one pcapng
    ...                                             # traffic
    cap.stop()                                      # size, packets, warnings
    cap.fetch("reports/x.pcapng", decisions="reports/x.decisions.jsonl")
    cap.discard()                                   # frees the router's disk

or ``with router.capture_start() as cap: ...`` (stopped and discarded at the end; fetch
inside the block).  The router side is ``services/router/netbed_router/capture.py``: one
tcpdump per data interface into a ring buffer (``ring_mb``, default 64 MB, the newest
packets kept), merged into one pcapng whose interfaces are named ``eth1 (client side)``
and ``eth2 (server side)``.  ``decisions`` also has the userspace engine log what it did to
each packet (``decisions.jsonl``; ``packet_key`` joins it to the capture).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from netbed_core.packet_key import ethernet_ip_key
from netbed_core.pcapng import Packet, read_pcapng

from .errors import AgentConnectionError, AgentError, CaptureError

#: Seconds the router may take to start both tcpdumps, to stop and merge, per chunk read.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 30.0
#: Bytes per capture_read request.
CHUNK_BYTES = 1024 * 1024


class CaptureHost(Protocol):
    """What a capture needs of the router (``host.Router``)."""

    name: str

    def call(self, op: str, /, **args: Any) -> dict[str, Any]: ...


@dataclass
class CaptureResult:
    """A stopped capture: its pcapng's ``size`` (bytes) and ``packets``, the packets the
    capture itself lost (``dropped_by_kernel`` per side; None: unknown), ``warnings``
    (tcpdump's errors, a full disk), and the decision log's summary (None: not asked for)."""

    size: int
    packets: int | None
    seconds: float
    dropped_by_kernel: dict[str, int | None]
    warnings: list[str]
    decisions: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class Capture:
    """A capture at the router (see the module docstring)."""

    def __init__(self, router: CaptureHost, reply: dict[str, Any]) -> None:
        self.router = router
        self.handle: str = reply["handle"]
        self.interfaces: dict[str, str] = reply["interfaces"]
        self.direction: str = reply["direction"]
        self.ring_mb: int = reply["ring_mb"]
        self.decisions: bool = bool(reply.get("decisions"))
        #: Why there is no decision log although one was asked for (kernel backend), or None.
        self.decisions_note: str | None = reply.get("decisions_note")
        self.result: CaptureResult | None = None
        self.discarded = False

    def __repr__(self) -> str:
        return f"<Capture {self.handle} on {self.router.name} {self.interfaces}>"

    def stop(self) -> CaptureResult:
        """Stop capturing and merge the pcapng on the router (idempotent)."""
        if self.result is None:
            self.result = _result(_call(self.router, "capture_stop", handle=self.handle, timeout=STOP_TIMEOUT_S))
        return self.result

    def snapshot(self, since_ns: int, until_ns: int | None = None, *, decisions: bool = True) -> Capture:
        """A stopped capture holding this running capture's packets from ``since_ns`` to
        ``until_ns`` (wall clock ns, ``time.time_ns()``: the testbed shares this machine's
        clock; None: now), and the decision log over the same span; this one keeps running.
        ``result.raw["complete"]`` is False when the ring had already overwritten part of it."""
        r = _call(self.router, "capture_snapshot", handle=self.handle, since_ns=since_ns, until_ns=until_ns,
                  decisions=decisions, timeout=STOP_TIMEOUT_S)
        snap = Capture(self.router, {**r, "decisions": bool(r.get("decisions"))})
        snap.result = _result(r)
        return snap

    def fetch(self, path: str | Path, *, decisions: str | Path | None = None) -> Path:
        """Copy the pcapng (stopping the capture first if needed) to ``path``, and the
        decision log to ``decisions`` if given and there is one.  Returns ``path``."""
        result = self.stop()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._download("capture", path)
        if decisions is not None and result.decisions and "file" in result.decisions:
            self._download("decisions", Path(decisions))
        return path

    def _download(self, which: str, path: Path) -> None:
        tmp = path.with_name(path.name + ".part")
        try:
            with tmp.open("wb") as f:
                offset = 0
                while True:
                    r = _call(self.router, "capture_read", handle=self.handle, file=which, offset=offset,
                              size=CHUNK_BYTES, timeout=READ_TIMEOUT_S)
                    f.write(base64.b64decode(r["data"]))
                    offset += r["size"]
                    if r["eof"] or not r["size"]:
                        break
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def discard(self) -> None:
        """Stop (if running) and delete the capture on the router.  Idempotent; a router
        that is gone is not an error (its captures went with it)."""
        if self.discarded:
            return
        self.discarded = True
        try:
            self.router.call("capture_discard", handle=self.handle, timeout=STOP_TIMEOUT_S)
        except AgentConnectionError:
            pass  # the router is gone, and its captures with it
        except AgentError as exc:
            if exc.kind != "bad_handle":
                raise CaptureError(f"capture_discard: {exc}") from exc

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()


def _result(r: dict[str, Any]) -> CaptureResult:
    return CaptureResult(size=r["size"], packets=r.get("packets"), seconds=r.get("seconds", 0.0),
                         dropped_by_kernel=r.get("dropped_by_kernel", {}), warnings=list(r.get("warnings", [])),
                         decisions=r.get("decisions") if isinstance(r.get("decisions"), dict) else None, raw=r)


def start(router: CaptureHost, *, direction: str = "both", ring_mb: int | None = None,
          decisions: bool = False, max_seconds: float | None = None, survives_reset: bool = False) -> Capture:
    """Start capturing at ``router``; raises CaptureError naming why it cannot (no tcpdump,
    no permission, no space, too many captures).  ``survives_reset``: the router's ``reset``
    keeps it (a pytest session's capture, cut per test with ``snapshot``)."""
    args: dict[str, Any] = {"direction": direction, "decisions": decisions, "timeout": START_TIMEOUT_S,
                            "survives_reset": survives_reset}
    if ring_mb is not None:
        args["ring_mb"] = ring_mb
    if max_seconds is not None:
        args["max_seconds"] = max_seconds
    return Capture(router, _call(router, "capture_start", **args))


def discard_all(router: CaptureHost) -> int:
    """Discard every capture at ``router`` (what a killed session left); how many."""
    return int(_call(router, "capture_discard", all=True, timeout=STOP_TIMEOUT_S)["discarded"])


def _call(router: CaptureHost, op: str, **args: Any) -> dict[str, Any]:
    try:
        return router.call(op, **args)
    except (AgentError, AgentConnectionError) as exc:
        raise CaptureError(f"{op}: {exc}") from exc


# --------------------------------------------------------------------------------------
# reading what was fetched
# --------------------------------------------------------------------------------------
def read(path: str | Path) -> list[Packet]:
    """Every packet of a fetched pcapng, in capture order."""
    with Path(path).open("rb") as f:
        return list(read_pcapng(f))


def keys_by_side(packets: list[Packet]) -> dict[str, list[str]]:
    """The packet keys (``netbed_core.packet_key``) seen on each side, in order:
    ``{"client": [...], "server": [...]}``, from interface names ending in "(client side)" etc."""
    out: dict[str, list[str]] = {"client": [], "server": []}
    for p in packets:
        side = "client" if p.interface.endswith("(client side)") else \
            "server" if p.interface.endswith("(server side)") else None
        key = ethernet_ip_key(p.data)
        if side is not None and key is not None:
            out[side].append(key)
    return out


def read_decisions(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A fetched decision log: its header and its entries (one dict per packet, in time order)."""
    with Path(path).open() as f:
        lines: Iterator[str] = (line for line in f if line.strip())
        header = json.loads(next(lines, "{}"))
        return header, [json.loads(line) for line in lines]
