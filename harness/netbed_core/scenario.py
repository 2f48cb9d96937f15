"""A scenario: network conditions over time, as data. Parsed once, the same way, by the harness
(YAML files, ``router.scenario(...)``) and by the router agent (``scenario_start``).

A scenario is a list of **steps** and a **repeat** count. Each step is a mapping:

- ``at``: its offset from the start of a cycle (``"1.5s"``, ``"200ms"``), or
- ``duration``: how long it lasts; a step without ``at`` starts when the previous one ends
  (``at`` and ``duration`` may both be given: then the next step may still omit ``at``);
- what it does, exactly one of:
  - ``netem``: a netem line (``"delay 50ms loss 1%"``), the word ``partition`` (every packet
    dropped, as netem's own ``partition``) or the word ``clear`` (pristine forwarding);
  - ``pause`` / ``resume`` / ``restart``: a host name (a *host fault*; these need Docker, so
    the harness executes them, not the router);
- ``direction`` (``both``, ``to-server``, ``to-client``; default ``both``) and ``match``
  (``"udp:5000"``, checked by the router's match parser), for netem steps only.

A cycle lasts until the last step's end (``at`` + ``duration``). ``repeat`` is how many cycles
run (0: until stopped); to repeat, the last step needs a ``duration``. When the scenario ends,
the last step's setting stays (end with ``netem: clear`` to end pristine).

Standard library only (copied into the router image). Times are milliseconds (``*_ms``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .directions import BOTH, expand
from .netem import Netem, NetemError, parse, to_text

#: Keys a step may have.
STEP_KEYS = frozenset({"at", "duration", "netem", "direction", "match", "pause", "resume", "restart"})
#: Host faults: executed by the harness (they need Docker), recorded in the timeline.
HOST_ACTIONS: tuple[str, ...] = ("pause", "resume", "restart")
#: Bounds that keep a scenario's memory and its schedule finite.
MAX_STEPS = 1000
MAX_REPEAT = 1_000_000
#: The longest offset or duration, ms (one day).
MAX_TIME_MS = 86_400_000.0
#: The shortest cycle that may repeat, ms: below it the router would spend its time applying.
MIN_REPEATING_CYCLE_MS = 1.0

_TIME = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|sec|secs|ms|msec|msecs|us|usec|usecs)\s*$")
_UNIT_MS = {"s": 1000.0, "sec": 1000.0, "secs": 1000.0, "ms": 1.0, "msec": 1.0, "msecs": 1.0,
            "us": 0.001, "usec": 0.001, "usecs": 0.001}


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the step (1-based) and what is wrong."""

    def __init__(self, message: str, step: int | None = None, *, bad_netem: bool = False) -> None:
        super().__init__(message if step is None else f"step {step}: {message}")
        self.step = step
        self.bad_netem = bad_netem
        """True when the netem parser refused the step's netem line (the message is its own)."""


def parse_duration_ms(value: object, what: str) -> float:
    """``"1.5s"``, ``"200ms"``, ``"500us"`` -> milliseconds. A bare number is refused: its unit
    would be a guess (tc reads a bare number as microseconds)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"{what}: expected a time with its unit like '200ms' or '1.5s', got {value!r}")
    m = _TIME.match(value)
    if m is None:
        raise ValueError(f"{what}: expected a time with its unit like '200ms' or '1.5s', got {value!r}")
    ms = float(m.group(1)) * _UNIT_MS[m.group(2)]
    if ms > MAX_TIME_MS:
        raise ValueError(f"{what}: at most one day ({MAX_TIME_MS:.0f} ms), got {value!r}")
    return ms


@dataclass(frozen=True)
class Step:
    """One step: when it starts in its cycle (``start_ms``), what it does, where."""

    index: int
    """1-based, as users count steps."""
    start_ms: float
    """Offset from the start of the cycle, ms."""
    duration_ms: float | None
    """How long it lasts, ms; None: until the next step (or, for the last, the end)."""
    action: str
    """``netem`` (``netem`` holds it), ``clear``, or a host fault (``pause``, ``resume``, ``restart``)."""
    netem: Netem | None = None
    direction: str = BOTH
    match: str | None = None
    host: str | None = None
    """The host of a host fault."""

    @property
    def directions(self) -> tuple[str, ...]:
        return expand(self.direction)

    @property
    def on_router(self) -> bool:
        """True for what the router executes (netem, clear); False for host faults."""
        return self.action not in HOST_ACTIONS

    def describe(self) -> str:
        """A short phrase: ``"to-server: delay 50ms"``, ``"both: clear"``, ``"pause server"``."""
        if not self.on_router:
            return f"{self.action} {self.host}"
        what = "clear" if self.netem is None else to_text(self.netem)
        where = self.direction + (f" {self.match}" if self.match else "")
        return f"{where}: {what}"

    def to_wire(self) -> dict[str, Any]:
        """The step as a mapping that :func:`parse_scenario` reads back to an equal step
        (times in ms with their unit, so nothing is rounded on the way)."""
        out: dict[str, Any] = {"at": f"{self.start_ms!r}ms"}
        if self.duration_ms is not None:
            out["duration"] = f"{self.duration_ms!r}ms"
        if self.on_router:
            out["netem"] = "clear" if self.netem is None else to_text(self.netem)
            out["direction"] = self.direction
            if self.match is not None:
                out["match"] = self.match
        else:
            out[self.action] = self.host
        return out


@dataclass(frozen=True)
class Scenario:
    """Validated steps, in start order, and how many cycles run (0: until stopped)."""

    steps: tuple[Step, ...]
    repeat: int
    cycle_ms: float
    """The length of one cycle, ms: the last step's end (its start when it has no duration)."""

    def schedule(self) -> Iterator[tuple[int, Step, float]]:
        """(cycle from 0, step, offset from the scenario's start in ms), in time order, forever
        when ``repeat`` is 0."""
        cycle = 0
        while self.repeat == 0 or cycle < self.repeat:
            for step in self.steps:
                yield cycle, step, cycle * self.cycle_ms + step.start_ms
            cycle += 1

    @property
    def total_ms(self) -> float | None:
        """From the start to the last step's start or end, ms; None when it repeats until stopped."""
        return None if self.repeat == 0 else (self.repeat - 1) * self.cycle_ms + self.cycle_ms

    @property
    def router_directions(self) -> tuple[str, ...]:
        """Every direction some router step touches (the ones to restore when it stops)."""
        names: list[str] = []
        for step in self.steps:
            if step.on_router:
                names += [d for d in step.directions if d not in names]
        return tuple(names)

    def to_wire(self) -> dict[str, Any]:
        return {"steps": [s.to_wire() for s in self.steps], "repeat": self.repeat}


def _parse_step(raw: object, index: int, previous: Step | None) -> Step:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"must be a mapping with 'at' or 'duration' and 'netem', got {raw!r}", index)
    unknown = sorted(str(k) for k in raw if k not in STEP_KEYS)
    if unknown:
        raise ScenarioError(f"unknown key(s) {', '.join(map(repr, unknown))}; a step has "
                            f"{', '.join(sorted(STEP_KEYS))}", index)
    try:
        at = parse_duration_ms(raw["at"], "at") if raw.get("at") is not None else None
        duration = parse_duration_ms(raw["duration"], "duration") if raw.get("duration") is not None else None
    except ValueError as exc:
        raise ScenarioError(str(exc), index) from None
    if at is None:
        if previous is None:
            at = 0.0
        elif previous.duration_ms is None:
            raise ScenarioError(f"give 'at', or a 'duration' on step {index - 1}, to say when it starts", index)
        else:
            at = previous.start_ms + previous.duration_ms
    if previous is not None and at <= previous.start_ms:
        raise ScenarioError(f"starts at {at:g} ms, not after step {index - 1} ({previous.start_ms:g} ms)", index)
    if previous is not None and previous.duration_ms is not None and \
            abs(previous.start_ms + previous.duration_ms - at) > 1e-9:
        raise ScenarioError(f"starts at {at:g} ms but step {index - 1} lasts until "
                            f"{previous.start_ms + previous.duration_ms:g} ms", index)
    actions = [k for k in ("netem", *HOST_ACTIONS) if raw.get(k) is not None]
    if len(actions) != 1:
        raise ScenarioError("give exactly one of 'netem' (a netem line, 'partition' or 'clear'), "
                            f"'pause', 'resume' or 'restart' (a host), got {actions or 'none'}", index)
    action = actions[0]
    if action in HOST_ACTIONS:
        host = raw[action]
        if not isinstance(host, str) or not host:
            raise ScenarioError(f"{action}: expected a host name like 'server', got {host!r}", index)
        if raw.get("direction") is not None or raw.get("match") is not None:
            raise ScenarioError(f"{action}: 'direction' and 'match' apply to netem steps only", index)
        return Step(index, at, duration, action, host=host)
    text = raw["netem"]
    if not isinstance(text, str):
        raise ScenarioError(f"netem: expected a netem line, 'partition' or 'clear', got {text!r}", index)
    direction = raw.get("direction", BOTH)
    try:
        expand(direction if isinstance(direction, str) else repr(direction))
    except ValueError as exc:
        raise ScenarioError(str(exc), index) from None
    match = raw.get("match")
    if match is not None and (not isinstance(match, str) or not match):
        raise ScenarioError(f"match: expected a string like 'udp:5000', got {match!r}", index)
    if text.strip() == "clear":
        return Step(index, at, duration, "clear", None, direction, match)
    try:
        netem = parse(text)
    except NetemError as exc:
        raise ScenarioError(f"netem {text!r}: {exc}", index, bad_netem=True) from None
    if netem.is_pristine:
        raise ScenarioError(f"netem {text!r} changes nothing; write 'clear' for pristine forwarding", index)
    return Step(index, at, duration, "netem", netem, direction, match)


def parse_scenario(steps: object, repeat: object = 1) -> Scenario:
    """Validate ``steps`` (a list of step mappings) and ``repeat`` (cycles, 0: until stopped).
    Raises :class:`ScenarioError` naming the first bad step and what is wrong with it."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 0 <= repeat <= MAX_REPEAT:
        raise ScenarioError(f"repeat: expected a whole number of cycles from 0 (until stopped) "
                            f"to {MAX_REPEAT}, got {repeat!r}")
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence) or not steps:
        raise ScenarioError(f"steps: expected a non-empty list of steps, got {steps!r}")
    if len(steps) > MAX_STEPS:
        raise ScenarioError(f"steps: at most {MAX_STEPS}, got {len(steps)}")
    parsed: list[Step] = []
    for index, raw in enumerate(steps, start=1):
        parsed.append(_parse_step(raw, index, parsed[-1] if parsed else None))
    last = parsed[-1]
    cycle_ms = last.start_ms + (last.duration_ms or 0.0)
    if repeat != 1:
        if last.duration_ms is None:
            raise ScenarioError("to repeat, the last step needs a 'duration' (the cycle ends when it does)",
                                last.index)
        if cycle_ms < MIN_REPEATING_CYCLE_MS:
            raise ScenarioError(f"a repeating cycle must last at least {MIN_REPEATING_CYCLE_MS:g} ms, "
                                f"got {cycle_ms:g} ms")
    return Scenario(tuple(parsed), repeat, cycle_ms)


__all__ = ["HOST_ACTIONS", "MAX_REPEAT", "MAX_STEPS", "Scenario", "ScenarioError", "Step", "parse_duration_ms",
           "parse_scenario"]
