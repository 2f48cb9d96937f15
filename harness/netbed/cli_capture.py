"""`netbed capture`: capture at the router, interactively, into a pcapng file.

    netbed capture -w run.pcapng                         # until Ctrl-C
    netbed capture --seconds 10 --direction to-server -w up.pcapng --decisions up.jsonl

Ctrl-C (or SIGTERM) stops the capture cleanly: the file is still written (a second Ctrl-C
while it is being fetched is ignored, so the file is never left half-written).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from netbed_core.directions import BOTH, DIRECTIONS

from .capture import Capture
from .testbed import Testbed

#: A capture the CLI leaves running (the CLI was killed) ends itself this long after its
#: planned end at the latest, seconds; without --seconds it may run an hour.
EXPIRY_MARGIN_S = 60.0
UNBOUNDED_MAX_S = 3600.0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("capture", help="capture the router's two data interfaces into one pcapng (Ctrl-C stops)",
                       description="Captures the client-side and server-side interfaces of the router into one "
                                   "pcapng with interface names. Stops after --seconds or on Ctrl-C, then writes FILE.")
    p.add_argument("-w", "--write", required=True, metavar="FILE", help="the pcapng file to write")
    p.add_argument("--direction", choices=[BOTH, *DIRECTIONS], default=BOTH,
                   help="only packets going this way (default: both)")
    p.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds (default: at Ctrl-C)")
    p.add_argument("--ring-mb", type=int, metavar="MB",
                   help="ring buffer at the router, MB (default 64; the newest packets are kept)")
    p.add_argument("--decisions", metavar="FILE",
                   help="also write the userspace engine's per-packet decision log (JSON lines) to FILE")
    p.set_defaults(func=cmd_capture)


def cmd_capture(opts: argparse.Namespace) -> int:
    if opts.seconds is not None and not 0 < opts.seconds <= 24 * 3600:
        print(f"netbed: --seconds must be between 0 and 86400, got {opts.seconds:g}", file=sys.stderr)
        return 2
    out = Path(opts.write)
    if not out.parent.is_dir():
        print(f"netbed: cannot write {out}: {out.parent} is not a directory", file=sys.stderr)
        return 2
    tb = Testbed(opts.instance)
    try:
        max_s = UNBOUNDED_MAX_S if opts.seconds is None else opts.seconds + EXPIRY_MARGIN_S
        cap = tb.router.capture_start(direction=opts.direction, ring_mb=opts.ring_mb,
                                      decisions=opts.decisions is not None, max_seconds=max_s)
        try:
            print(f"netbed: capturing {cap.interfaces['client']} (client side) and {cap.interfaces['server']} "
                  f"(server side), {opts.direction}; ring {cap.ring_mb} MB; "
                  + (f"{opts.seconds:g} s" if opts.seconds else "Ctrl-C to stop"), file=sys.stderr)
            if cap.decisions_note:
                print(f"netbed: no decision log: {cap.decisions_note}", file=sys.stderr)
            _wait(opts.seconds)
        finally:
            _finish(cap, out, opts.decisions)
    finally:
        tb.close_connections()
    return 0


def _wait(seconds: float | None) -> None:
    """Until `seconds` pass or Ctrl-C/SIGTERM (KeyboardInterrupt) arrives."""
    try:
        threading.Event().wait(seconds)
    except KeyboardInterrupt:
        print("", file=sys.stderr)


def _finish(cap: Capture, out: Path, decisions: str | None) -> None:
    """Stop, fetch and discard, with Ctrl-C ignored meanwhile."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = cap.stop()
        cap.fetch(out, decisions=decisions)
    finally:
        cap.discard()
        signal.signal(signal.SIGINT, previous)
    print(f"netbed: wrote {out}: {result.packets} packets, {result.size} bytes, {result.seconds:g} s", file=sys.stderr)
    if decisions is not None and result.decisions and "file" in result.decisions:
        print(f"netbed: wrote {decisions}: {result.decisions.get('entries', 0)} decisions", file=sys.stderr)
    lost = {side: n for side, n in result.dropped_by_kernel.items() if n}
    if lost:
        print(f"netbed: warning: the capture missed packets (tcpdump, dropped by kernel): {lost}", file=sys.stderr)
    for w in result.warnings:
        print(f"netbed: warning: {w}", file=sys.stderr)
