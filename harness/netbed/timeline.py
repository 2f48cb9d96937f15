"""Reading the router's impairment timeline: what was active during a test, and short texts.

The router keeps every impair, clear and reset (``Router.events()``, the agent's ``events``
operation).  A test's *network record* (:func:`network_record`) joins the timeline at the
test's start, the events during it and the router's counters at its end into one JSON-able
dict; :func:`render_failure` turns it into the few lines a failing test's report shows,
:func:`junit_properties` into JUnit properties, and the run report (run_report.py) shows it
per test.  All pure: no connection, so unit tests feed them replies.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any, Protocol

from netbed_core.direction_stats import DirectionStats
from netbed_core.directions import DIRECTIONS

#: Counters shown per direction (those the backend measures; `netbed status` shows the same).
SHOWN_COUNTERS = ("seen", "passed", "dropped", "duplicated", "corrupted", "reordered", "delayed", "queue_depth")
#: Changes kept in a record: a test that flaps an impairment thousands of times keeps the last ones.
MAX_RECORDED_CHANGES = 50
#: Sequence numbers above any real one: asks the router for no events, only `latest` and `next_seq`.
NO_EVENTS = 2**62


def clock(wall_s: float | None) -> str:
    """A wall time (seconds since the epoch) as HH:MM:SS.mmm UTC ("-" for None)."""
    if wall_s is None:
        return "-"
    return _dt.datetime.fromtimestamp(wall_s, _dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def setting_text(event: Mapping[str, Any] | None) -> str:
    """One event's setting in a few words: the netem text and its match, or "none"."""
    if event is None or event.get("kind") != "impair":
        return "none (pristine forwarding)"
    text = str(event.get("netem") or event.get("description") or "?")
    return f"{text} [only {event['match']}]" if event.get("match") else text


def format_events(reply: Mapping[str, Any]) -> str:
    """`netbed events`: one line per event, oldest first, and what fell out of the log."""
    lines = []
    if reply.get("dropped"):
        lines.append(f"({reply['dropped']} older events fell out of the router's log of {reply.get('max_events')})")
    for e in reply.get("events", []):
        what = setting_text(e) if e["kind"] == "impair" else ""
        lines.append(f"{e['seq']:>6}  {clock(e['wall_s'])}  {e['direction']:9}  {e['kind']:6}  "
                     f"({e['origin']})  {what}{_seed_note(e, what)}".rstrip())
    if not reply.get("events"):
        lines.append("no events")
    return "\n".join(lines)


def _seed_note(event: Mapping[str, Any], text: str) -> str:
    """" (seed N)" for a seed the text does not already show (one the backend drew)."""
    seed = event.get("seed")
    return "" if seed is None or f"seed {seed}" in text else f" (seed {seed})"


def _active(event: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if event is None or event.get("kind") != "impair":
        return None
    return {k: event.get(k) for k in ("seq", "wall_s", "origin", "netem", "description", "match", "seed", "spec")}


def _counters(entry: Mapping[str, Any]) -> dict[str, int]:
    stats = DirectionStats.from_dict(entry.get("stats") or {})
    return {name: value for name in SHOWN_COUNTERS if isinstance(value := getattr(stats, name), int)}


def network_record(start: Mapping[str, Any], end: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """The network during one test: `start` is the `events` reply taken when it began (only its
    `latest` and `next_seq` are read), `end` the events since then, `status` `impair_status()`.

    Per direction: `active` (the setting at the end, with the time it was set), `during` (every
    impairment active at some time in the test, oldest first) and `counters` (what the backend
    counted, measured counters only).  `changes` are the events during the test."""
    changes = list(end.get("events", []))
    directions: dict[str, Any] = {}
    for d in DIRECTIONS:
        during = [a for a in [_active(start.get("latest", {}).get(d))] if a is not None]
        during += [a for e in changes if e.get("direction") == d and (a := _active(e)) is not None]
        directions[d] = {
            "active": _active(end.get("latest", {}).get(d)),
            "since_wall_s": (end.get("latest", {}).get(d) or {}).get("wall_s"),
            "during": during,
            # A backend may keep a cleared direction's last counters readable: they belong to an
            # earlier test, so a direction not impaired during this one shows none.
            "counters": _counters(status.get("directions", {}).get(d, {})) if during else {},
        }
    return {
        "backend": status.get("backend", end.get("backend", "?")),
        "backend_reason": status.get("reason", ""),
        "start_seq": start.get("next_seq"),
        "directions": directions,
        "changes": changes[-MAX_RECORDED_CHANGES:],
        "changes_total": len(changes),
        "complete": bool(end.get("complete", True)),
    }


class TimelineRouter(Protocol):
    """What :func:`collect` reads of a router (a ``netbed.host.Router``)."""

    def events(self, since: int | None = None) -> dict[str, Any]: ...

    def impair_status(self) -> dict[str, Any]: ...


def collect(router: TimelineRouter, start: Mapping[str, Any]) -> dict[str, Any]:
    """The network record of a test that began when the router answered `start`
    (``router.events(since=NO_EVENTS)``): reads the events since then and the counters now."""
    end = router.events(since=int(start.get("next_seq", 1)) - 1)
    restarted = end.get("log_id") != start.get("log_id")
    if restarted:  # the router agent restarted during the test: its new log is all of this test's
        end = router.events()
    record = network_record(start, end, router.impair_status())
    record["router_restarted"] = restarted
    return record


def impairment_summary(record: Mapping[str, Any]) -> str:
    """What was active during the test, per direction, in one line ("none" when nothing was)."""
    parts = []
    for d, entry in record.get("directions", {}).items():
        texts = list(dict.fromkeys(setting_text({"kind": "impair", **a}) for a in entry.get("during", [])))
        if texts:
            parts.append(f"{d}: {' then '.join(texts)}")
    return "; ".join(parts) or "none"


def seed_summary(record: Mapping[str, Any]) -> str:
    """The seeds in use during the test, per direction ("none" when no impairment had one)."""
    parts = []
    for d, entry in record.get("directions", {}).items():
        seeds = list(dict.fromkeys(str(a["seed"]) for a in entry.get("during", []) if a.get("seed") is not None))
        if seeds:
            parts.append(f"{d}: {', '.join(seeds)}")
    return "; ".join(parts) or "none"


def counters_line(counters: Mapping[str, int]) -> str:
    """name=value for each counter, in SHOWN_COUNTERS order."""
    return " ".join(f"{k}={v}" for k, v in counters.items()) or "(none measured)"


def junit_properties(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The JUnit properties of a test (`--junitxml`): impairment, seed and backend."""
    return [("netbed_impairment", impairment_summary(record)), ("netbed_seed", seed_summary(record)),
            ("netbed_backend", str(record.get("backend", "?")))]


def render_failure(record: Mapping[str, Any], now_wall_s: float | None = None,
                   when: str = "active at the failure") -> str:
    """A failing test's report section: per direction what was active, since when and with which
    seed; the counters as one line per direction; the changes during the test.  `when` heads
    the setting's column (the run report shows the same table for every test)."""
    rows = [("direction", when, "since (UTC)", "seed")]
    for d, entry in record.get("directions", {}).items():
        active = entry.get("active")
        since = clock(entry.get("since_wall_s"))
        if now_wall_s is not None and entry.get("since_wall_s") is not None:
            since += f" ({now_wall_s - entry['since_wall_s']:.1f} s before)"
        seed = "-" if not active or active.get("seed") is None else str(active["seed"])
        rows.append((d, setting_text({"kind": "impair", **active} if active else None), since, seed))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    reason = record.get("backend_reason")
    lines = [f"backend: {record.get('backend', '?')}" + (f" ({reason})" if reason else "")]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append("counters since the impairment was applied:")
    for d, entry in record.get("directions", {}).items():
        counted = counters_line(entry["counters"]) if entry.get("during") else "not impaired during this test"
        lines.append(f"  {d:9}  {counted}")
    changes = record.get("changes", [])
    total = record.get("changes_total", len(changes))
    if changes:
        shown = f" (the last {len(changes)})" if total > len(changes) else ""
        lines.append(f"changes during the test: {total}{shown}")
        for e in changes:
            what = setting_text(e) if e.get("kind") == "impair" else "cleared"
            lines.append(f"  {clock(e.get('wall_s'))}  {e.get('direction', '?'):9}  {what}{_seed_note(e, what)}  "
                         f"({e.get('origin')})")
    else:
        lines.append("changes during the test: none")
    if not record.get("complete", True):
        lines.append("(some events of this test fell out of the router's bounded log)")
    if record.get("router_restarted"):
        lines.append("(the router agent restarted during the test: its timeline began again then)")
    return "\n".join(lines)
