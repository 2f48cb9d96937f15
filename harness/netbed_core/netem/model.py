"""The impairment model: one :class:`Netem` made of validated sections.

A :class:`Netem` is one complete netem configuration. Each section (delay, loss, ...) is a
small frozen dataclass with units in its field names (see :mod:`.section` and the registry
in :mod:`.registry`); the plain settings (``limit_packets``, ``ecn``, ``partition``, ``seed``)
are plain values. Every constructor validates its arguments and raises :class:`NetemError`,
so a ``Netem`` that exists is one ``tc`` accepts.

Units: times are milliseconds (``*_ms``, float), percentages are 0-100 (``*_pct``, float),
rates are bits per second (``bits_per_s``, int), sizes are bytes (``*_bytes``, int).

The dict form (:meth:`Netem.to_dict` / :func:`from_dict`) is the wire format the router agent
receives; see docs/netem.md. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from . import render
from .checks import (
    DEFAULT_LIMIT_PACKETS,
    DELAY_DISTRIBUTIONS,
    MAX_DELAY_MS,
    MAX_SLOT_MS,
    NetemError,
)
from .combine import check_model
from .delay import Delay
from .loss import GemodelLoss, Loss, RandomLoss, StateLoss
from .probability import Corrupt, Duplicate
from .rate import Rate
from .registry import REGISTRY
from .reorder import Reorder
from .section import Section
from .slot import Slot
from .trace_section import TraceLink

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


@dataclass(frozen=True)
class Netem:
    """One complete netem configuration. ``Netem()`` is pristine: no impairment at all.

    Attributes:
        delay, loss, duplicate, corrupt, reorder, rate, slot: the sections, None when absent.
        limit_packets: netem queue limit in packets (default 1000).
        ecn: mark ECN-capable packets instead of dropping them (needs a loss model).
        partition: netbed extension -- drop every packet. Must be the only setting.
        seed: seed of netem's random generator (Linux >= 6.3), or None for a random seed.
        trace: netbed extension -- the rate follows a recorded link trace (userspace engine only).
        extra: sections registered without an attribute here (see docs/extending.md), at
            most one per key; kept in registry order.

    The attributes above are in wire order (the order of :meth:`to_dict`'s keys).
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
    trace: TraceLink | None = None
    extra: tuple[Section, ...] = ()

    def __post_init__(self) -> None:
        for section in REGISTRY.sections:
            if section.key in _ATTRIBUTES:
                section.check(getattr(self, section.key))
        if self.extra:
            object.__setattr__(self, "extra", _sorted_extra(self.extra))
        check_model(self)

    @classmethod
    def of(cls, values: Mapping[type[Section], object]) -> Netem:
        """A ``Netem`` from raw attribute values per section class (absent ones take defaults)."""
        kwargs: dict[str, object] = {}
        extra: list[Section] = []
        for section, raw in values.items():
            if section.key in _ATTRIBUTES:
                kwargs[section.key] = raw
            elif isinstance(raw, Section):
                extra.append(raw)
        return cls(**kwargs, extra=tuple(extra))  # type: ignore[arg-type]

    def raw(self, section: type[Section]) -> object:
        """The attribute value of ``section`` (its default when absent)."""
        if section.key in _ATTRIBUTES:
            return getattr(self, section.key)
        found = [s for s in self.extra if s.key == section.key]
        return found[0] if found else section.default()

    def sections(self) -> list[Section]:
        """The sections present, in registry order (the plain settings are always present)."""
        out = []
        for section in REGISTRY.sections:
            value = section.wrap(self.raw(section))
            if value is not None:
                out.append(value)
        return out

    @property
    def is_pristine(self) -> bool:
        """True when this configuration impairs nothing (the empty input)."""
        return self == Netem()

    def settings(self) -> list[str]:
        """Keywords of the settings that differ from the defaults, in canonical order."""
        return [s.keywords[0] for s in self.sections() if s.is_set()]

    def to_dict(self) -> dict[str, object]:
        """The JSON-able wire form; every key is present (None for absent sections)."""
        out = {key: REGISTRY.by_key[key].to_wire(getattr(self, key)) for key in _ATTRIBUTES}
        for section in self.extra:
            out[section.key] = type(section).to_wire(section)
        return out

    @classmethod
    def from_dict(cls, data: object) -> Netem:
        """Inverse of :meth:`to_dict`; see :func:`from_dict`."""
        return from_dict(data)

    def to_tc_args(self) -> list[str]:
        """Shortcut for :func:`netbed_core.netem.render.to_tc_args`."""
        return render.to_tc_args(self)

    def __str__(self) -> str:
        return render.to_text(self)


_ATTRIBUTES: tuple[str, ...] = tuple(f.name for f in fields(Netem) if f.name != "extra")
"""The sections with an attribute of their own on ``Netem``, in wire order."""


def _sorted_extra(extra: tuple[Section, ...]) -> tuple[Section, ...]:
    order = {s.key: i for i, s in enumerate(REGISTRY.sections)}
    for s in extra:
        if not isinstance(s, Section) or s.key not in order or s.key in _ATTRIBUTES:
            raise NetemError(f"netem: {s!r} is not a registered section", token=str(getattr(s, "key", s)),
                             expected="a registered section")
    if len({s.key for s in extra}) != len(extra):
        raise NetemError("netem: a section is given twice in extra", token="extra", expected="each once")
    return tuple(sorted(extra, key=lambda s: order[s.key]))


def from_dict(data: object) -> Netem:
    """Build a :class:`Netem` from its dict form (as produced by :meth:`Netem.to_dict`).

    Unknown keys are rejected with the key's name; keys whose field has a default may be
    omitted. Integers are accepted where floats are expected. ``from_dict(n.to_dict()) == n``.
    """
    if not isinstance(data, dict):
        raise NetemError(f"netem: expected an object, not {data!r}", expected="an object")
    values: dict[type[Section], object] = {}
    for key, value in data.items():
        section = REGISTRY.by_key.get(key)
        if section is None:
            raise NetemError(f'netem: unknown key "{key}"', token=str(key),
                             expected="one of " + ", ".join(REGISTRY.by_key))
        values[section] = section.from_wire(value)
    return Netem.of(values)
