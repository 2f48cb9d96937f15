"""The contract every netem section fulfils, and the token stream their parsers read.

A *section* is one part of a netem configuration: ``limit``, ``delay``, ``loss``, ``rate``,
``ecn``... Each is one small frozen dataclass, a subclass of :class:`Section`, that knows how
to parse itself from tc tokens, validate itself (in ``__post_init__``), render itself as tc
arguments and as a summary, lint itself, give its dict (wire) form and say what
``tc -j qdisc show`` reads back. :mod:`netbed_core.netem.registry` lists them in canonical
order; the parser, the renderer, lint, the dict form, the router's engine and read-back are
loops over that list. Rules that span sections live in :mod:`netbed_core.netem.combine`.
How to add one: docs/extending.md. Standard library only.

:class:`NetemView` is the whole setting as a section's ``lint``, the cross-section checks and
the renderer see it. It is a protocol, not :class:`~netbed_core.netem.model.Netem` itself,
because model.py imports every section: a section importing model.py back (even only for
type checking) would make the package's import graph a circle (issue #11). The view names
the sections' attributes as ``object``, so this module needs no section module either;
code that reads a section's fields narrows with ``isinstance`` first.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, ClassVar, Protocol

from .checks import MAX_DELAY_MS, MAX_SLOT_MS, NetemError
from .units import (
    UnitError,
    format_percent,
    parse_int,
    parse_percent,
    parse_time_ms,
    starts_like_number,
    starts_like_signed_number,
)

__all__ = ["PCT", "NetemView", "Section", "Tokens", "build_from_dict", "correlation_warning", "plain", "suggest"]

PCT = "a percentage like 1%"


class Section:
    """Base of every section. Subclasses are frozen dataclasses with units in their field names.

    Class attributes (how the section sits in a :class:`~netbed_core.netem.model.Netem`):
        key: the ``Netem`` attribute and ``to_dict`` key holding this section.
        keywords: the tc keywords this section owns; the first names it (``("reorder", "gap")``).
        synonyms: older spellings tc still accepts, mapped to one of ``keywords``.
        detail: True for settings that change no packet (limit, seed): a summary lists them last.

    Class methods deal with the ``Netem`` attribute ("raw" value: the section, or None when
    absent; plain values for the scalar settings), instance methods with the section itself.
    """

    key: ClassVar[str]
    keywords: ClassVar[tuple[str, ...]]
    synonyms: ClassVar[Mapping[str, str]] = {}
    detail: ClassVar[bool] = False

    # -- the raw Netem attribute -------------------------------------------------------------

    @classmethod
    def default(cls) -> object:
        """The attribute's value when the section is absent."""
        return None

    @classmethod
    def wrap(cls, raw: object) -> Section | None:
        """The section held by the attribute value ``raw``, or None when absent."""
        return raw if isinstance(raw, Section) else None

    @classmethod
    def check(cls, raw: object) -> None:
        """Reject an attribute value of the wrong type (values validate themselves)."""
        if raw is not None and not isinstance(raw, cls):
            raise NetemError(f'netem: "{cls.key}" must be a {cls.__name__} or None, not {raw!r}',
                             token=cls.key, expected=cls.__name__)

    @classmethod
    def to_wire(cls, raw: object) -> object:
        """The JSON-able dict form of the attribute (None when absent)."""
        return None if raw is None else plain(raw)

    @classmethod
    def from_wire(cls, data: object) -> object:
        """Inverse of :meth:`to_wire`; unknown keys are rejected by name."""
        return None if data is None else build_from_dict(cls, cls.key, data)

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        """Read the arguments of ``keyword`` (already taken) from ``tokens``; returns a piece."""
        raise NotImplementedError

    @classmethod
    def build(cls, pieces: Mapping[str, object], seen: Mapping[str, str]) -> object:
        """The attribute value from the parsed pieces (keyword -> :meth:`parse` result).

        ``seen`` maps each keyword given to the token as written, for messages. Sections with
        one keyword take its piece as is; sections with two say here how they combine.
        """
        return pieces.get(cls.keywords[0], cls.default())

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        """The ``tc -j`` option objects of this section as the kernel shows them when unset;
        None for an object the kernel must not show at all when unset (``slot``)."""
        return {}

    # -- the section itself ------------------------------------------------------------------

    def is_set(self) -> bool:
        """True when this differs from netem's default (a present dataclass section always does)."""
        return True

    def tc_args(self) -> list[str]:
        """Exact tokens for ``tc qdisc replace ... netem``, with explicit units."""
        raise NotImplementedError

    def text_args(self) -> list[str]:
        """netbed syntax tokens: like :meth:`tc_args`, but nothing for a default setting."""
        return self.tc_args() if self.is_set() else []

    def describe(self) -> str | None:
        """A short human phrase for summaries, or None to say nothing."""
        raise NotImplementedError

    def lint(self, netem: NetemView) -> list[str]:
        """Warnings about this section; ``netem`` is the whole setting, for context."""
        return []

    def readback(self) -> dict[str, Any]:
        """Entries of the ``options`` object ``tc -j qdisc show`` prints for this section
        (times in seconds, percentages as fractions, rates in bytes per second)."""
        return {}


class NetemView(Protocol):
    """What lint, :func:`~netbed_core.netem.combine.check_model` and the renderer read of a
    :class:`~netbed_core.netem.model.Netem` (which satisfies this protocol).

    The typed section attributes are ``object`` here (a ``Delay | None``, ... on ``Netem``):
    narrow with ``isinstance`` before reading a field. A section without an attribute of its
    own is read with :meth:`raw`.
    """

    @property
    def delay(self) -> object: ...

    @property
    def loss(self) -> object: ...

    @property
    def reorder(self) -> object: ...

    @property
    def rate(self) -> object: ...

    @property
    def ecn(self) -> bool: ...

    @property
    def partition(self) -> bool: ...

    def raw(self, section: type[Section]) -> object:
        """The attribute value of ``section`` (its default when absent)."""
        ...

    def sections(self) -> list[Section]:
        """The sections present, in registry order."""
        ...

    def settings(self) -> list[str]:
        """Keywords of the settings that differ from the defaults, in canonical order."""
        ...


def correlation_warning(name: str, corr_pct: float) -> str:
    """The lint warning for netem's correlation, shared by every section that has one."""
    return (f"{name} correlation {format_percent(corr_pct)} is only an approximation: netem mixes each new "
            "random value with the previous one, which is not a true statistical correlation and "
            "shrinks the spread of the values; set it to 0 unless you have measured its effect.")


# --------------------------------------------------------------------------------------------
# dict form helpers


def plain(obj: object) -> dict[str, object]:
    """A dataclass's fields as a dict, in declaration order."""
    assert is_dataclass(obj)
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def build_from_dict(cls: type, where: str, data: object, skip: tuple[str, ...] = ()) -> object:
    """``cls(**data)``, rejecting a non-object, unknown keys and missing required keys by name."""
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


# --------------------------------------------------------------------------------------------
# tokens


def suggest(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` most likely meant (exact, unique prefix, or close spelling), or None."""
    low = word.lower()
    if low in choices:
        return low
    prefixed = [c for c in choices if low and c.startswith(low)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(low, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


class Tokens:
    """The tokens being parsed, with tc-like conversions whose errors name the token.

    ``words`` are all keywords and synonyms: a required argument may not be one of them.
    """

    def __init__(self, tokens: list[str], words: frozenset[str]) -> None:
        self.toks = tokens
        self.i = 0
        self.words = words

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def need(self, keyword: str, what: str, expected: str) -> str:
        """Take the required argument of ``keyword``; error if missing or if it is a keyword."""
        nxt = self.peek()
        if nxt is None or nxt in self.words:
            raise NetemError(f'netem: "{keyword}" needs {what}', token=keyword, expected=expected)
        return self.take()

    def next_is_number(self) -> bool:
        """tc's ``NEXT_IS_NUMBER``: an optional argument is present only if it starts with a digit."""
        nxt = self.peek()
        return nxt is not None and starts_like_number(nxt)

    def next_is_signed_number(self) -> bool:
        nxt = self.peek()
        return nxt is not None and starts_like_signed_number(nxt)

    @staticmethod
    def bad(what: str, tok: str, expected: str) -> NetemError:
        return NetemError(f'netem: bad {what} "{tok}": expected {expected}', token=tok, expected=expected)

    def time(self, what: str, tok: str, *, nanoseconds: bool = False) -> float:
        """A time in ms; ``nanoseconds`` is slot's ``get_time64`` (s64 ns), else ``get_time``."""
        try:
            ms = parse_time_ms(tok, nanoseconds=nanoseconds)
        except UnitError as e:
            raise self.bad(what, tok, str(e)) from None
        limit = MAX_SLOT_MS if nanoseconds else MAX_DELAY_MS
        if ms > limit:
            raise self.bad(what, tok, f"a time tc can represent (at most {limit}ms)")
        return ms

    def pct(self, what: str, tok: str) -> float:
        try:
            return parse_percent(tok)
        except UnitError as e:
            if str(e) == "range":
                raise NetemError(f'netem: percentage "{tok}" is outside 0-100%', token=tok,
                                 expected="a percentage between 0% and 100%") from None
            raise self.bad(what, tok, str(e)) from None

    def opt_pct(self, what: str) -> float:
        """An optional trailing percentage (a correlation), 0 when absent."""
        return self.pct(what, self.take()) if self.next_is_number() else 0.0

    def optional_pcts(self, names: Sequence[str], what: str) -> list[float]:
        """Up to ``len(names)`` optional percentages, as many as are given."""
        out: list[float] = []
        for name in names:
            if not self.next_is_number():
                break
            out.append(self.pct(f"{what} {name}", self.take()))
        return out

    def integer(self, what: str, tok: str, lo: int, hi: int, *, signed: bool = False, octal_zero: bool = True) -> int:
        """A decimal integer in ``lo..hi``; see :func:`~.units.parse_int` for ``octal_zero``."""
        try:
            value = parse_int(tok, signed=signed, octal_zero=octal_zero)
        except UnitError as e:
            raise self.bad(what, tok, str(e)) from None
        if not lo <= value <= hi:
            raise self.bad(what, tok, f"a number from {lo} to {hi}")
        return value
