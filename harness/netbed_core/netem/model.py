"""The impairment model: frozen, validated dataclasses with units in the field names.

A :class:`Netem` is one complete netem configuration. Each optional section (delay, loss, ...)
is ``None`` when absent. Every constructor validates its arguments in ``__post_init__`` and
raises :class:`NetemError`, so a ``Netem`` that exists is one ``tc`` accepts.

Units: times are milliseconds (``*_ms``, float), percentages are 0-100 (``*_pct``, float),
rates are bits per second (``bits_per_s``, int), sizes are bytes (``*_bytes``, int).

The dict form (:meth:`Netem.to_dict` / :func:`from_dict`) is the wire format the router agent
receives; see docs/netem.md. Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import ClassVar, Literal, TypeAlias

__all__ = [
    "DEFAULT_LIMIT_PACKETS",
    "DELAY_DISTRIBUTIONS",
    "MAX_DELAY_MS",
    "MAX_SLOT_MS",
    "Corrupt",
    "Delay",
    "Duplicate",
    "GemodelLoss",
    "Loss",
    "Netem",
    "NetemError",
    "RandomLoss",
    "Rate",
    "Reorder",
    "Slot",
    "StateLoss",
    "from_dict",
]

DEFAULT_LIMIT_PACKETS = 1000
"""netem's default queue limit in packets (``struct tc_netem_qopt opt = { .limit = 1000 }``)."""

DELAY_DISTRIBUTIONS: tuple[str, ...] = ("uniform", "normal", "pareto", "paretonormal")
"""Delay distributions accepted by netbed. ``uniform`` is netem's built-in (no table)."""

MAX_DELAY_MS = 274877.906944
"""Largest delay/jitter tc accepts: 2**32 psched ticks of 64 ns (tc says "time (too large)")."""

MAX_SLOT_MS = (2**63 - 1) / 1e6
"""Largest slot time: netem keeps slot times as s64 nanoseconds (about 292 years)."""

_U32_MAX = 2**32 - 1
_S32_MAX = 2**31 - 1
_U64_MAX = 2**64 - 1


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


def _show(value: object) -> str:
    """``repr`` that stays short (and never fails: Python refuses to print ints over 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_number(name: str, value: object) -> float:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        raise NetemError(f'netem: "{name}" = {_show(value)} is too large: at most {_MAX_INT_BITS} bits',
                         token=name, expected="a number of at most 64 bits")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NetemError(f'netem: "{name}" must be a finite number, not {_show(value)}', token=name,
                         expected="a number")
    return float(value)


def _check_pct(name: str, value: object) -> float:
    v = _check_number(name, value)
    if not 0.0 <= v <= 100.0:
        raise NetemError(f'netem: "{name}" = {_show(value)} is outside 0-100%', token=name,
                         expected="a percentage between 0 and 100")
    return v


def _check_ms(name: str, value: object, *, limit: float = MAX_SLOT_MS) -> float:
    v = _check_number(name, value)
    if v < 0:
        raise NetemError(f'netem: "{name}" = {_show(value)} is negative', token=name,
                         expected="a time that is not negative")
    if v > limit:
        raise NetemError(f'netem: "{name}" = {_show(value)} ms is too large for tc (at most {limit} ms)',
                         token=name, expected=f"a time up to {limit}ms")
    return v


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise NetemError(f'netem: "{name}" must be an integer, not {_show(value)}', token=name,
                         expected="an integer")
    if not lo <= value <= hi:
        raise NetemError(f'netem: "{name}" = {_show(value)} is outside {lo}-{hi}', token=name,
                         expected=f"an integer from {lo} to {hi}")
    return value


def _set(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass inside ``__post_init__`` (e.g. int -> float)."""
    object.__setattr__(obj, name, value)


# --------------------------------------------------------------------------------------------
# sections


@dataclass(frozen=True)
class Delay:
    """``delay TIME [JITTER [CORRELATION]] [distribution D]``.

    Attributes:
        delay_ms: base delay added to every packet, milliseconds.
        jitter_ms: random variation around ``delay_ms``, milliseconds (0 = none).
        correlation_pct: how much each random jitter value depends on the previous one, 0-100.
        distribution: jitter distribution table, or None for netem's built-in uniform jitter.
            ``"uniform"`` is normalised to None (tc ships no ``uniform.dist`` table; uniform is
            what netem does without one).
    """

    delay_ms: float
    jitter_ms: float = 0.0
    correlation_pct: float = 0.0
    distribution: str | None = None

    def __post_init__(self) -> None:
        _set(self, "delay_ms", _check_ms("delay_ms", self.delay_ms, limit=MAX_DELAY_MS))
        _set(self, "jitter_ms", _check_ms("jitter_ms", self.jitter_ms, limit=MAX_DELAY_MS))
        _set(self, "correlation_pct", _check_pct("correlation_pct", self.correlation_pct))
        if self.distribution is not None:
            if self.distribution not in DELAY_DISTRIBUTIONS:
                raise NetemError(
                    f'netem: unknown delay distribution "{self.distribution}": '
                    f"expected one of {', '.join(DELAY_DISTRIBUTIONS)}",
                    token=str(self.distribution), expected=f"one of {', '.join(DELAY_DISTRIBUTIONS)}")
            if self.delay_ms == 0 or self.jitter_ms == 0:
                raise NetemError(
                    'netem: "distribution" needs a delay with jitter, like "delay 100ms 10ms '
                    'distribution normal" (the distribution shapes the jitter)',
                    token="distribution", expected="a delay and jitter above zero")
            if self.distribution == "uniform":
                _set(self, "distribution", None)


@dataclass(frozen=True)
class RandomLoss:
    """``loss [random] PERCENT [CORRELATION]``: independent (Bernoulli) loss.

    Attributes:
        pct: probability that a packet is dropped, 0-100.
        correlation_pct: dependence on the previous random value, 0-100 (deprecated by netem).
    """

    model: ClassVar[Literal["random"]] = "random"
    pct: float
    correlation_pct: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "pct", _check_pct("pct", self.pct))
        _set(self, "correlation_pct", _check_pct("correlation_pct", self.correlation_pct))


@dataclass(frozen=True)
class StateLoss:
    """``loss state P13 [P31 [P32 [P23 [P14]]]]``: 4-state Markov loss model (percent, 0-100).

    State 1 = good reception, 2 = good reception within a burst, 3 = burst losses,
    4 = independent losses. ``pXY`` is the transition probability from state X to Y.
    Defaults when omitted (tc): p31 = 100 - p13, p32 = 0, p23 = 100, p14 = 0.
    """

    model: ClassVar[Literal["state"]] = "state"
    p13_pct: float
    p31_pct: float
    p32_pct: float = 0.0
    p23_pct: float = 100.0
    p14_pct: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            _set(self, f.name, _check_pct(f.name, getattr(self, f.name)))


@dataclass(frozen=True)
class GemodelLoss:
    """``loss gemodel P [R [1-H [1-K]]]``: Gilbert-Elliott loss model (percent, 0-100).

    Attributes:
        p_pct: transition probability good -> bad.
        r_pct: transition probability bad -> good (tc default 100 - p).
        one_minus_h_pct: loss probability in the bad state (default 100).
        one_minus_k_pct: loss probability in the good state (default 0).
    """

    model: ClassVar[Literal["gemodel"]] = "gemodel"
    p_pct: float
    r_pct: float
    one_minus_h_pct: float = 100.0
    one_minus_k_pct: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            _set(self, f.name, _check_pct(f.name, getattr(self, f.name)))


Loss: TypeAlias = RandomLoss | StateLoss | GemodelLoss
"""Any of the three loss models."""


@dataclass(frozen=True)
class _Probability:
    """A percentage of packets (0-100) and netem's correlation with the previous decision."""

    pct: float
    correlation_pct: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "pct", _check_pct("pct", self.pct))
        _set(self, "correlation_pct", _check_pct("correlation_pct", self.correlation_pct))


@dataclass(frozen=True)
class Duplicate(_Probability):
    """``duplicate PERCENT [CORRELATION]``: percent (0-100) of packets sent twice."""


@dataclass(frozen=True)
class Corrupt(_Probability):
    """``corrupt PERCENT [CORRELATION]``: percent (0-100) of packets with a flipped bit."""


@dataclass(frozen=True)
class Reorder:
    """``reorder PERCENT [CORRELATION] [gap DISTANCE]``.

    Attributes:
        pct: probability (0-100) that an eligible packet skips the delay and is sent at once.
        correlation_pct: dependence on the previous random value, 0-100.
        gap: every ``gap``-th packet is eligible (the first ``gap - 1`` are always delayed);
            1 (tc's default) makes every packet eligible.
    """

    pct: float
    correlation_pct: float = 0.0
    gap: int = 1

    def __post_init__(self) -> None:
        _set(self, "pct", _check_pct("pct", self.pct))
        _set(self, "correlation_pct", _check_pct("correlation_pct", self.correlation_pct))
        _check_int("gap", self.gap, 1, _U32_MAX)


@dataclass(frozen=True)
class Rate:
    """``rate RATE [PACKETOVERHEAD [CELLSIZE [CELLOVERHEAD]]]``: serialisation delay.

    Attributes:
        bits_per_s: link rate, bits per second (the kernel keeps whole bytes per second).
        packet_overhead_bytes: added to (or, if negative, removed from) each packet's length.
        cell_size_bytes: link-layer cell size (e.g. 48 for ATM); 0 = no cells.
        cell_overhead_bytes: per-cell overhead (e.g. 5 for ATM); only used with a cell size.
    """

    bits_per_s: int
    packet_overhead_bytes: int = 0
    cell_size_bytes: int = 0
    cell_overhead_bytes: int = 0

    def __post_init__(self) -> None:
        _check_int("bits_per_s", self.bits_per_s, 8, _U64_MAX)
        _check_int("packet_overhead_bytes", self.packet_overhead_bytes, -_S32_MAX - 1, _S32_MAX)
        _check_int("cell_size_bytes", self.cell_size_bytes, 0, _U32_MAX)
        _check_int("cell_overhead_bytes", self.cell_overhead_bytes, -_S32_MAX - 1, _S32_MAX)


@dataclass(frozen=True)
class Slot:
    """``slot MIN_DELAY [MAX_DELAY]`` or ``slot distribution D DELAY JITTER``, then
    ``[packets N] [bytes N]``: deliver packets in bursts ("slots").

    Exactly one of the two forms is used:

    * min/max form: ``distribution``, ``delay_ms`` and ``jitter_ms`` are None; slots are spaced
      uniformly between ``min_delay_ms`` and ``max_delay_ms`` (equal when no max was given).
    * distribution form: ``min_delay_ms == max_delay_ms == 0`` and ``distribution`` names a tc
      table (``normal``, ``pareto``, ``paretonormal`` or a custom FILE); slot spacing is
      ``delay_ms`` +/- ``jitter_ms`` (jitter must be above 0). ``uniform`` is not a table tc
      ships; the parser turns ``slot distribution uniform D J`` into ``slot D-J D+J``.

    Attributes:
        min_delay_ms / max_delay_ms: slot spacing bounds, milliseconds.
        distribution: distribution table name, or None.
        delay_ms / jitter_ms: distribution-form spacing, milliseconds, or None.
        max_packets: most packets delivered per slot, or None for no limit.
        max_bytes: most bytes delivered per slot, or None for no limit.
    """

    min_delay_ms: float = 0.0
    max_delay_ms: float = 0.0
    distribution: str | None = None
    delay_ms: float | None = None
    jitter_ms: float | None = None
    max_packets: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        _set(self, "min_delay_ms", _check_ms("min_delay_ms", self.min_delay_ms))
        _set(self, "max_delay_ms", _check_ms("max_delay_ms", self.max_delay_ms))
        if self.distribution is None:
            if self.delay_ms is not None or self.jitter_ms is not None:
                raise NetemError('netem: slot "delay_ms"/"jitter_ms" need a slot "distribution"',
                                 token="distribution", expected="a slot distribution name")
            if self.max_delay_ms < self.min_delay_ms:
                raise NetemError(
                    f"netem: slot max delay {self.max_delay_ms}ms is below the min delay "
                    f"{self.min_delay_ms}ms", token="slot", expected="a max delay >= the min delay")
        else:
            name = self.distribution
            if not isinstance(name, str) or not name or any(c.isspace() or c == "/" for c in name):
                raise NetemError(f"netem: bad slot distribution {name!r}: expected a table name",
                                 token=str(name), expected="a distribution table name like normal")
            if name == "uniform":
                raise NetemError(
                    'netem: tc has no "uniform" slot distribution table: write "slot MIN MAX" '
                    "(slots uniformly spaced between MIN and MAX) instead",
                    token="uniform", expected="normal, pareto, paretonormal or a table FILE")
            if self.min_delay_ms != 0 or self.max_delay_ms != 0:
                raise NetemError("netem: a slot uses either MIN [MAX] or a distribution, not both",
                                 token="distribution", expected="min/max delay 0 with a distribution")
            if self.delay_ms is None or self.jitter_ms is None:
                raise NetemError('netem: "slot distribution" needs DELAY and JITTER', token="distribution",
                                 expected="a delay and a jitter")
            _set(self, "delay_ms", _check_ms("delay_ms", self.delay_ms))
            jitter = _check_ms("jitter_ms", self.jitter_ms)
            if jitter <= 0:
                raise NetemError("netem: slot distribution jitter must be above 0", token="jitter_ms",
                                 expected="a jitter above zero")
            _set(self, "jitter_ms", jitter)
        if self.max_packets is not None:
            _check_int("max_packets", self.max_packets, 1, _S32_MAX)
        if self.max_bytes is not None:
            _check_int("max_bytes", self.max_bytes, 1, _S32_MAX)


# --------------------------------------------------------------------------------------------
# the whole configuration

_SECTION_KEYWORDS: dict[str, str] = {
    "delay": "delay",
    "loss": "loss",
    "duplicate": "duplicate",
    "corrupt": "corrupt",
    "reorder": "reorder",
    "rate": "rate",
    "slot": "slot",
}


@dataclass(frozen=True)
class Netem:
    """One complete netem configuration. ``Netem()`` is pristine: no impairment at all.

    Attributes:
        delay, loss, duplicate, corrupt, reorder, rate, slot: the sections, None when absent.
        limit_packets: netem queue limit in packets (default 1000).
        ecn: mark ECN-capable packets instead of dropping them (needs a loss model).
        partition: netbed extension -- drop every packet. Must be the only setting.
        seed: seed of netem's random generator (Linux >= 6.3), or None for a random seed.
    """

    delay: Delay | None = None
    loss: Loss | None = None
    duplicate: Duplicate | None = None
    corrupt: Corrupt | None = None
    reorder: Reorder | None = None
    rate: Rate | None = None
    slot: Slot | None = None
    limit_packets: int = DEFAULT_LIMIT_PACKETS
    ecn: bool = False
    partition: bool = False
    seed: int | None = None

    _types: ClassVar[dict[str, tuple[type, ...]]] = {
        "delay": (Delay,),
        "loss": (RandomLoss, StateLoss, GemodelLoss),
        "duplicate": (Duplicate,),
        "corrupt": (Corrupt,),
        "reorder": (Reorder,),
        "rate": (Rate,),
        "slot": (Slot,),
    }

    def __post_init__(self) -> None:
        for name, types in self._types.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, types):
                raise NetemError(f'netem: "{name}" must be a {types[0].__name__} or None, not {value!r}',
                                 token=name, expected=types[0].__name__)
        _check_int("limit_packets", self.limit_packets, 1, _U32_MAX)
        if not isinstance(self.ecn, bool):
            raise NetemError(f'netem: "ecn" must be true or false, not {self.ecn!r}', token="ecn",
                             expected="a boolean")
        if not isinstance(self.partition, bool):
            raise NetemError(f'netem: "partition" must be true or false, not {self.partition!r}',
                             token="partition", expected="a boolean")
        if self.seed is not None:
            _check_int("seed", self.seed, 0, _U64_MAX)

        if self.partition:
            others = self.settings()
            others.remove("partition")
            if others:
                raise NetemError(
                    f'netem: "partition" cannot be combined with "{others[0]}": a partition drops '
                    "every packet, so nothing else applies",
                    token=others[0], expected='"partition" on its own')
        if self.reorder is not None:
            if self.reorder.pct > 0 and (self.delay is None or self.delay.delay_ms == 0):
                raise NetemError(
                    'netem: "reorder" needs a delay: reordering sends some packets without the '
                    'delay, e.g. "delay 10ms reorder 25%"',
                    token="reorder", expected="a delay above zero")
            if self.reorder.pct == 0 and self.reorder.gap > 1:
                raise NetemError('netem: "gap" needs "reorder" with a percentage above 0',
                                 token="gap", expected="a reorder percentage above 0")
        if self.ecn:
            if self.loss is None or (isinstance(self.loss, RandomLoss) and self.loss.pct == 0):
                raise NetemError('netem: "ecn" needs a loss model: ECN marks packets that would be lost',
                                 token="ecn", expected="a loss setting")

    # ----------------------------------------------------------------------------------------

    @property
    def is_pristine(self) -> bool:
        """True when this configuration impairs nothing (the empty input)."""
        return self == Netem()

    def settings(self) -> list[str]:
        """Keywords of the settings that differ from the defaults, in canonical order."""
        out = [kw for name, kw in _SECTION_KEYWORDS.items() if getattr(self, name) is not None]
        if self.limit_packets != DEFAULT_LIMIT_PACKETS:
            out.insert(0, "limit")
        if self.ecn:
            out.append("ecn")
        if self.partition:
            out.append("partition")
        if self.seed is not None:
            out.append("seed")
        return out

    def to_dict(self) -> dict[str, object]:
        """The JSON-able wire form; every key is present (None for absent sections)."""
        return {
            "delay": None if self.delay is None else {
                "delay_ms": self.delay.delay_ms,
                "jitter_ms": self.delay.jitter_ms,
                "correlation_pct": self.delay.correlation_pct,
                "distribution": self.delay.distribution,
            },
            "loss": None if self.loss is None else {"model": self.loss.model, **_plain(self.loss)},
            "duplicate": None if self.duplicate is None else _plain(self.duplicate),
            "corrupt": None if self.corrupt is None else _plain(self.corrupt),
            "reorder": None if self.reorder is None else _plain(self.reorder),
            "rate": None if self.rate is None else _plain(self.rate),
            "slot": None if self.slot is None else _plain(self.slot),
            "limit_packets": self.limit_packets,
            "ecn": self.ecn,
            "partition": self.partition,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: object) -> Netem:
        """Inverse of :meth:`to_dict`; see :func:`from_dict`."""
        return from_dict(data)

    def to_tc_args(self) -> list[str]:
        """Shortcut for :func:`netbed_core.netem.render.to_tc_args`."""
        from .render import to_tc_args

        return to_tc_args(self)

    def __str__(self) -> str:
        from .render import to_text

        return to_text(self)


def _plain(obj: object) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# dict -> model

_SECTIONS: dict[str, type] = {
    "delay": Delay,
    "duplicate": Duplicate,
    "corrupt": Corrupt,
    "reorder": Reorder,
    "rate": Rate,
    "slot": Slot,
}
_LOSS_MODELS: dict[str, type] = {"random": RandomLoss, "state": StateLoss, "gemodel": GemodelLoss}
_TOP_DEFAULTS: dict[str, object] = {
    "limit_packets": DEFAULT_LIMIT_PACKETS,
    "ecn": False,
    "partition": False,
    "seed": None,
}


def _build(cls: type, where: str, data: object, skip: tuple[str, ...] = ()) -> object:
    if not isinstance(data, dict):
        raise NetemError(f'netem: "{where}" must be an object or null, not {data!r}', token=where,
                         expected="an object or null")
    names = {f.name for f in fields(cls)}
    kwargs: dict[str, object] = {}
    for key, value in data.items():
        if key in skip:
            continue
        if key not in names:
            raise NetemError(f'netem: unknown key "{key}" in "{where}"', token=str(key),
                             expected=f"one of {', '.join(sorted(names | set(skip)))}")
        kwargs[key] = value
    required = [f.name for f in fields(cls) if f.default is MISSING and f.name not in kwargs]
    if required:
        raise NetemError(f'netem: "{where}" is missing "{required[0]}"', token=required[0],
                         expected=f'a value for "{required[0]}"')
    return cls(**kwargs)


def from_dict(data: object) -> Netem:
    """Build a :class:`Netem` from its dict form (as produced by :meth:`Netem.to_dict`).

    Unknown keys are rejected with the key's name; keys whose field has a default may be
    omitted. Integers are accepted where floats are expected. ``from_dict(n.to_dict()) == n``.
    """
    if not isinstance(data, dict):
        raise NetemError(f"netem: expected an object, not {data!r}", expected="an object")
    kwargs: dict[str, object] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            kwargs[key] = None if value is None else _build(_SECTIONS[key], key, value)
        elif key == "loss":
            if value is None:
                kwargs[key] = None
                continue
            if not isinstance(value, dict):
                raise NetemError(f'netem: "loss" must be an object or null, not {value!r}', token="loss",
                                 expected="an object or null")
            model = value.get("model")
            if model not in _LOSS_MODELS:
                raise NetemError(f'netem: unknown loss model {model!r}: expected random, state or gemodel',
                                 token=str(model), expected="random, state or gemodel")
            kwargs[key] = _build(_LOSS_MODELS[str(model)], "loss", value, skip=("model",))
        elif key in _TOP_DEFAULTS:
            kwargs[key] = value
        else:
            raise NetemError(f'netem: unknown key "{key}"', token=str(key),
                             expected="one of " + ", ".join([*_SECTIONS, "loss", *_TOP_DEFAULTS]))
    return Netem(**kwargs)  # type: ignore[arg-type]

