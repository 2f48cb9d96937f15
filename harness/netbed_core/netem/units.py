"""Unit parsing and formatting, following iproute2's own rules.

Every parser mirrors the iproute2 function tc uses for that argument, so a value means
here exactly what it means to ``tc``:

* times for ``delay``/jitter: ``get_time()`` (lib/utils.c) -- suffixes ``s|sec|secs``,
  ``ms|msec|msecs``, ``us|usec|usecs`` (case-insensitive); a bare number is **microseconds**.
* times for ``slot``: ``get_time64()`` -- the same suffixes plus ``ns|nsec|nsecs``; a bare
  number is **nanoseconds**.
* rates: ``get_rate64()`` (tc/tc_util.c) -- a bare number is **bits** per second; suffixes
  are matched case-insensitively, so ``kbps``/``mbps`` mean kilo/mega **bytes** per second.
* percentages: ``parse_percent()`` -- ``1%`` and a bare ``1`` both mean one percent
  (a bare number is *not* a fraction); the value must lie in 0-100.
* sizes (``slot ... bytes``): ``get_size()`` -- a bare number is bytes, ``k``/``kb`` = 1024.

Numbers are handled as :class:`decimal.Decimal` so that unit conversion is exact (``0.7s`` is
exactly 700 ms), and formatting emits the shortest string that parses back to the same float.
Every number is bounded *before* it is converted (at most :data:`MAX_DIGITS` digits and an
exponent within ±:data:`MAX_EXPONENT`): ``1e999999bit`` would otherwise build a million-digit
integer while holding the GIL, and ``1e999999999ms`` overflows :mod:`decimal`'s context.
Standard library only.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "MAX_DIGITS",
    "MAX_EXPONENT",
    "UnitError",
    "format_number",
    "format_percent",
    "format_rate",
    "format_rate_human",
    "format_time_ms",
    "parse_int",
    "parse_percent",
    "parse_rate_bits",
    "parse_size_bytes",
    "parse_time_ms",
    "starts_like_number",
    "starts_like_signed_number",
]


class UnitError(ValueError):
    """A value could not be parsed; ``str(err)`` says what was expected (e.g. "a time like 100ms")."""


MAX_DIGITS = 50
"""Most digits a number may have (before the exponent); 2**64 has 20, so no real value is lost."""

MAX_EXPONENT = 50
"""Largest exponent magnitude accepted (``1e50``, ``1e-50``); every tc field is far smaller."""

_NUMBER = re.compile(r"([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)(.*)", re.DOTALL)

# Time units in milliseconds per unit.
_TIME_UNITS_MS: dict[str, Decimal] = {
    "s": Decimal(1000),
    "sec": Decimal(1000),
    "secs": Decimal(1000),
    "ms": Decimal(1),
    "msec": Decimal(1),
    "msecs": Decimal(1),
    "us": Decimal("0.001"),
    "usec": Decimal("0.001"),
    "usecs": Decimal("0.001"),
}
_NS_UNITS_MS: dict[str, Decimal] = {
    "ns": Decimal("0.000001"),
    "nsec": Decimal("0.000001"),
    "nsecs": Decimal("0.000001"),
}

# tc/tc_util.c `suffixes[]`: scale to bits per second; compared with strcasecmp().
_RATE_UNITS_BITS: dict[str, int] = {
    "bit": 1,
    "kibit": 1024,
    "kbit": 1000,
    "mibit": 1024**2,
    "mbit": 1000**2,
    "gibit": 1024**3,
    "gbit": 1000**3,
    "tibit": 1024**4,
    "tbit": 1000**4,
    "bps": 8,
    "kibps": 8 * 1024,
    "kbps": 8 * 1000,
    "mibps": 8 * 1024**2,
    "mbps": 8 * 1000**2,
    "gibps": 8 * 1024**3,
    "gbps": 8 * 1000**3,
    "tibps": 8 * 1024**4,
    "tbps": 8 * 1000**4,
}

# tc/tc_util.c get_size(): bytes per unit, compared with strcasecmp().
_SIZE_UNITS_BYTES: dict[str, Decimal] = {
    "b": Decimal(1),
    "k": Decimal(1024),
    "kb": Decimal(1024),
    "m": Decimal(1024**2),
    "mb": Decimal(1024**2),
    "g": Decimal(1024**3),
    "gb": Decimal(1024**3),
    "kbit": Decimal(1024) / 8,
    "mbit": Decimal(1024**2) / 8,
    "gbit": Decimal(1024**3) / 8,
}


def starts_like_number(token: str) -> bool:
    """tc's ``NEXT_IS_NUMBER()``: does the token start with an ASCII digit?

    tc uses this test to decide whether an *optional* positional argument (jitter,
    correlation, ...) is present, so ``.5ms`` or ``-1%`` is never taken as one.
    """
    return bool(token) and token[0] in "0123456789"


def starts_like_signed_number(token: str) -> bool:
    """tc's ``NEXT_IS_SIGNED_NUMBER()``: starts with a digit or ``-``."""
    return starts_like_number(token) or token[:1] == "-"


def _bounds(expected: str) -> str:
    return (f"{expected}, with at most {MAX_DIGITS} digits and an exponent "
            f"from -{MAX_EXPONENT} to {MAX_EXPONENT}")


def _check_size(literal: str, expected: str) -> None:
    """Reject a number literal too long or too far in exponent to convert cheaply.

    Checked on the text, before :class:`Decimal` or :class:`int` sees it, so the cost of a
    hostile token is one pass over its characters.
    """
    mantissa, _, exponent = literal.lower().partition("e")
    digits = len(mantissa.lstrip("+-")) - mantissa.count(".")
    exp_digits = exponent.lstrip("+-").lstrip("0")
    if digits > MAX_DIGITS or len(exp_digits) > 4 or (exp_digits and int(exp_digits) > MAX_EXPONENT):
        raise UnitError(_bounds(expected))


def _split(token: str, expected: str) -> tuple[Decimal, str] | None:
    """Split ``"10.5ms"`` into ``(Decimal("10.5"), "ms")``; None if it does not start with a number.

    Raises :class:`UnitError` (naming ``expected`` and the bounds) for a number beyond
    :data:`MAX_DIGITS` / :data:`MAX_EXPONENT`.
    """
    m = _NUMBER.fullmatch(token)
    if m is None:
        return None
    _check_size(m.group(1), expected)
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:  # pragma: no cover - the regex only admits valid literals
        return None
    if not value.is_finite():  # pragma: no cover - idem
        return None
    return value, m.group(2)


def parse_time_ms(token: str, *, nanoseconds: bool = False) -> float:
    """Parse a tc time and return it in **milliseconds**.

    With ``nanoseconds=False`` (``delay``, jitter) this is ``get_time()``: a bare number is
    microseconds and ``ns`` is not accepted. With ``nanoseconds=True`` (``slot``) this is
    ``get_time64()``: a bare number is nanoseconds and ``ns|nsec|nsecs`` is accepted.
    Negative times are rejected.
    """
    expected = "a time like 100ms"
    parts = _split(token, expected)
    if parts is None:
        raise UnitError(expected)
    value, suffix = parts
    units = dict(_TIME_UNITS_MS)
    if nanoseconds:
        units.update(_NS_UNITS_MS)
    if suffix == "":
        scale = Decimal("0.000001") if nanoseconds else Decimal("0.001")
    else:
        found = units.get(suffix.lower())
        if found is None:
            raise UnitError(expected)
        scale = found
    if value < 0:
        raise UnitError("a time that is not negative, like 100ms")
    return float(value * scale)


def parse_percent(token: str) -> float:
    """Parse a tc percentage (``1.5%`` or bare ``1.5``, both one and a half percent) into percent.

    Raises :class:`UnitError` with ``"range"`` as message when the number is outside 0-100
    (iproute2's ``parse_percent()`` checks the range first, so ``-1%`` is out of range).
    """
    expected = "a percentage like 1% or 0.5%"
    parts = _split(token, expected)
    if parts is None or parts[1] not in ("", "%"):
        raise UnitError(expected)
    value = parts[0]
    if value < 0 or value > 100:
        raise UnitError("range")
    return float(value)


def parse_rate_bits(token: str) -> int:
    """Parse a tc rate and return **bits per second** (rounded to a whole bit).

    A bare number is bits per second; units as listed in :data:`_RATE_UNITS_BITS`, matched
    case-insensitively like tc (``Mbps`` = ``mbps`` = megabytes per second).
    """
    expected = "a rate like 10mbit"
    parts = _split(token, expected)
    if parts is None:
        raise UnitError(expected)
    value, suffix = parts
    if suffix == "":
        scale = 1
    else:
        found = _RATE_UNITS_BITS.get(suffix.lower())
        if found is None:
            raise UnitError(expected)
        scale = found
    bits = value * scale
    if bits <= 0:
        raise UnitError("a rate above zero, like 10mbit")
    return int(bits.to_integral_value())


def parse_size_bytes(token: str) -> int:
    """Parse a tc size (``get_size()``) and return bytes: bare = bytes, ``k``/``kb`` = 1024 bytes, ..."""
    expected = "a size like 1500 or 64kb"
    parts = _split(token, expected)
    if parts is None:
        raise UnitError(expected)
    value, suffix = parts
    if suffix == "":
        scale = Decimal(1)
    else:
        found = _SIZE_UNITS_BYTES.get(suffix.lower())
        if found is None:
            raise UnitError(expected)
        scale = found
    if value < 0:
        raise UnitError("a size that is not negative, like 1500")
    return int(value * scale)  # get_size() truncates


def parse_int(token: str, *, signed: bool = False, octal_zero: bool = True) -> int:
    """Parse a plain decimal integer.

    tc reads most integers with ``strtoul(..., 0)`` (``get_u32``/``get_s32``/``get_u64`` with
    base 0), so ``010`` means octal 8 and ``08`` is an error there; netbed takes decimal only
    and, where tc would read octal (``octal_zero``), rejects a leading zero instead of
    silently giving it another value. ``limit`` is read by tc as a size (decimal), so it
    passes ``octal_zero=False``.
    """
    pattern = r"[-+]?[0-9]+" if signed else r"\+?[0-9]+"
    expected = "an integer" if signed else "a whole number"
    if re.fullmatch(pattern, token) is None:
        raise UnitError(expected)
    _check_size(token, expected)
    if octal_zero and re.fullmatch(r"[-+]?0[0-9]+", token):
        raise UnitError(f"{expected} without a leading zero (tc reads a leading 0 as octal: 010 is 8)")
    return int(token)


def format_number(value: float) -> str:
    """Shortest plain-decimal spelling of ``value`` that parses back to the same float.

    ``100.0`` -> ``"100"``, ``0.5`` -> ``"0.5"``, ``1e-06`` -> ``"0.000001"`` (never an exponent).
    """
    d = Decimal(repr(float(value)))
    if d == d.to_integral_value():
        return str(int(d))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_time_ms(ms: float, *, nanoseconds: bool = False) -> str:
    """Render a time given in milliseconds as a tc token with an explicit unit.

    Whole milliseconds render as ``"100ms"``, whole microseconds as ``"4350us"`` (tc converts
    to integer microseconds with double arithmetic, and ``4.35ms`` would come out as 4349us),
    whole nanoseconds as ``"800ns"`` when ``nanoseconds`` is allowed (slot), anything finer
    as a plain millisecond decimal.
    """
    d = Decimal(repr(float(ms)))
    if d == d.to_integral_value():
        return f"{int(d)}ms"
    us = d * 1000
    if us == us.to_integral_value():
        return f"{int(us)}us"
    if nanoseconds:
        ns = d * 1_000_000
        if ns == ns.to_integral_value():
            return f"{int(ns)}ns"
    return f"{format_number(ms)}ms"


def format_percent(pct: float) -> str:
    """Render a percentage (0-100) as ``"1.5%"``."""
    return f"{format_number(pct)}%"


def format_rate(bits_per_s: int) -> str:
    """Render a rate as an exact tc token in bits per second: ``"10000000bit"``."""
    return f"{int(bits_per_s)}bit"


def format_rate_human(bits_per_s: int) -> str:
    """Human-readable rate for summaries: ``10000000`` -> ``"10Mbit/s"``, ``1500`` -> ``"1.5kbit/s"``."""
    for scale, name in ((10**12, "Tbit/s"), (10**9, "Gbit/s"), (10**6, "Mbit/s"), (10**3, "kbit/s")):
        if bits_per_s >= scale:
            return f"{format_number(round(bits_per_s / scale, 3))}{name}"
    return f"{bits_per_s}bit/s"
