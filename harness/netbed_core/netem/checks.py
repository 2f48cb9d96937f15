"""Errors, limits and validation helpers shared by every netem section.

Units follow the model: times in milliseconds, percentages 0-100, rates in bits per second,
sizes in bytes. Standard library only.
"""

from __future__ import annotations

import math

__all__ = [
    "DEFAULT_LIMIT_PACKETS",
    "DELAY_DISTRIBUTIONS",
    "FULL_PACKET_BYTES",
    "MAX_DELAY_MS",
    "MAX_JITTER_MS",
    "MAX_SLOT_MS",
    "NS_RESOLUTION_MS",
    "PCT_RESOLUTION",
    "SLOT_DISTRIBUTIONS",
    "US_RESOLUTION_MS",
    "NetemError",
    "S32_MAX",
    "U32_MAX",
    "U64_MAX",
    "check_int",
    "check_ms",
    "check_number",
    "check_pct",
    "set_field",
    "show",
]

DEFAULT_LIMIT_PACKETS = 1000
"""netem's default queue limit in packets (``struct tc_netem_qopt opt = { .limit = 1000 }``)."""

DELAY_DISTRIBUTIONS: tuple[str, ...] = ("uniform", "normal", "pareto", "paretonormal")
"""Delay distributions accepted by netbed. ``uniform`` is netem's built-in (no table)."""

SLOT_DISTRIBUTIONS: tuple[str, ...] = ("normal", "pareto", "paretonormal")
"""Slot distribution tables accepted by netbed: the tables iproute2 ships (minus ``experimental``,
which the userspace engine does not generate). tc would look for any other name as a file
``/usr/lib/tc/NAME.dist`` and refuse it when missing; netbed refuses it at parse time."""

FULL_PACKET_BYTES = 1500
"""Packet size assumed by lint when estimating packets in flight (an Ethernet MTU)."""

MAX_DELAY_MS = 274877.906944
"""Largest delay/jitter tc accepts: 2**32 psched ticks of 64 ns (tc says "time (too large)")."""

MAX_JITTER_MS = (2**31 - 1) / 1e6
"""Largest jitter the kernel keeps: netem stores it as at most INT_MAX nanoseconds
(``min_t(s64, abs(jitter), INT_MAX)`` in ``netem_change``) and silently caps a larger one, which
tc accepts; netbed refuses it instead of applying something other than asked."""

MAX_SLOT_MS = (2**63 - 1) / 1e6
"""Largest slot time: netem keeps slot times as s64 nanoseconds (about 292 years)."""

U32_MAX = 2**32 - 1
S32_MAX = 2**31 - 1
U64_MAX = 2**64 - 1

PCT_RESOLUTION = 100 / U32_MAX
"""tc's step for a percentage, in percent: it sends a probability as ``rint(p * (2**32 - 1))``,
so anything under half a step (about 0.0000000116%) reaches the kernel as 0."""

US_RESOLUTION_MS = 0.001
"""tc's resolution for ``delay`` and its jitter, in ms: ``get_time()`` keeps whole microseconds."""

NS_RESOLUTION_MS = 0.000001
"""tc's resolution for ``slot`` times, in ms: ``get_time64()`` keeps whole nanoseconds."""


class NetemError(ValueError):
    """An impairment that cannot be parsed or is not valid.

    Attributes:
        token: the offending input token (or dict key / keyword), or None.
        expected: what was expected instead (e.g. ``"a time like 100ms"``), or None.
    """

    def __init__(self, message: str, *, token: str | None = None, expected: str | None = None) -> None:
        super().__init__(message)
        self.token = token
        self.expected = expected


# --------------------------------------------------------------------------------------------
# validation helpers


_MAX_INT_BITS = 64
"""Widest integer a field may be given as; wider JSON numbers are rejected before any arithmetic."""


def show(value: object) -> str:
    """``repr`` that stays short (and never fails: Python refuses to print ints over 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_number(name: str, value: object) -> float:
    """``value`` as a float: a finite int or float of at most 64 bits (bool is refused)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        raise NetemError(f'netem: "{name}" = {show(value)} is too large: at most {_MAX_INT_BITS} bits',
                         token=name, expected="a number of at most 64 bits")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NetemError(f'netem: "{name}" must be a finite number, not {show(value)}', token=name,
                         expected="a number")
    return float(value)


def check_pct(name: str, value: object) -> float:
    """``value`` as a percentage, 0-100; a non-zero value tc would send as 0 is refused."""
    v = check_number(name, value)
    if not 0.0 <= v <= 100.0:
        raise NetemError(f'netem: "{name}" = {show(value)} is outside 0-100%', token=name,
                         expected="a percentage between 0 and 100")
    if 0.0 < v < PCT_RESOLUTION / 2:
        raise NetemError(
            f'netem: "{name}" = {show(value)}% is below tc\'s resolution: tc sends a probability in '
            f"steps of 1/4294967295 and would send 0; give 0 or at least {PCT_RESOLUTION / 2:.10f}%",
            token=name, expected="0, or a percentage tc can express")
    return v


def check_ms(name: str, value: object, *, limit: float = MAX_SLOT_MS, resolution: float = NS_RESOLUTION_MS,
             unit: str = "1ns") -> float:
    """``value`` as a time in milliseconds, from 0 to ``limit``; a non-zero time under tc's
    ``resolution`` (ms; ``unit`` names it) is refused, since tc would send it as 0."""
    v = check_number(name, value)
    if v < 0:
        raise NetemError(f'netem: "{name}" = {show(value)} is negative', token=name,
                         expected="a time that is not negative")
    if v > limit:
        raise NetemError(f'netem: "{name}" = {show(value)} ms is too large for tc (at most {limit} ms)',
                         token=name, expected=f"a time up to {limit}ms")
    if 0 < v < resolution:
        raise NetemError(f'netem: "{name}" = {show(value)} ms is below {unit}, tc\'s resolution here: '
                         f"tc would send 0; give 0 or at least {unit}", token=name,
                         expected=f"0, or a time of at least {unit}")
    return v


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    """``value`` as an int from ``lo`` to ``hi`` (bool and float are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise NetemError(f'netem: "{name}" must be an integer, not {show(value)}', token=name,
                         expected="an integer")
    if not lo <= value <= hi:
        raise NetemError(f'netem: "{name}" = {show(value)} is outside {lo}-{hi}', token=name,
                         expected=f"an integer from {lo} to {hi}")
    return value


def set_field(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass inside ``__post_init__`` (e.g. int -> float)."""
    object.__setattr__(obj, name, value)
