"""The one ordered list of netem sections, and what is derived from it.

The order is tc's canonical argument order (``limit delay loss duplicate corrupt reorder rate
slot ecn seed``, then netbed's ``partition``): :func:`~netbed_core.netem.render.to_tc_args`
renders in this order, lint warns in it, and the parser, the dict form, the router's engine
and its read-back all loop over it. Toxiproxy's ``toxics.Register`` is the model: a section
is added by writing its class (see docs/extending.md) and listing it here, or, from outside
this package, with :meth:`Registry.register`. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable

from .delay import Delay
from .loss import LossModel
from .probability import Corrupt, Duplicate
from .rate import Rate
from .reorder import Reorder
from .scalars import Ecn, Limit, Partition, Seed
from .section import Section
from .slot import Slot
from .trace_section import TraceLink

__all__ = ["REGISTRY", "Registry", "TC_USAGE_ORDER"]

TC_USAGE_ORDER: tuple[str, ...] = (
    "limit", "delay", "distribution", "loss", "ecn", "corrupt", "duplicate", "reorder", "gap",
    "rate", "slot", "seed",
)
"""The order tc's own usage text lists its keywords in; error messages list keywords this way
(any keyword tc does not have follows, in registry order)."""


class Registry:
    """An ordered set of section classes, with the lookups the parser and the dict form need.

    Attributes (recomputed on every change):
        sections: the section classes, in canonical order.
        by_key: ``Netem`` attribute / dict key -> section class.
        owners: keyword -> the section class that parses it.
        synonyms: old spelling -> keyword.
        keywords: every keyword, in :data:`TC_USAGE_ORDER` then registry order.
        words: keywords and synonyms: tokens that can never be an argument.
    """

    def __init__(self, sections: Iterable[type[Section]]) -> None:
        self.sections: tuple[type[Section], ...] = ()
        self.by_key: dict[str, type[Section]] = {}
        self.owners: dict[str, type[Section]] = {}
        self.synonyms: dict[str, str] = {}
        self.keywords: tuple[str, ...] = ()
        self.words: frozenset[str] = frozenset()
        self._set(tuple(sections))

    def register(self, section: type[Section], *, before: type[Section] | None = None) -> None:
        """Add ``section`` (at the end, or just before ``before``). Its key and keywords must be new."""
        clash = [kw for kw in (*section.keywords, *section.synonyms) if kw in self.words]
        if section.key in self.by_key or clash:
            raise ValueError(f"netem: section {section.__name__} clashes with a registered one "
                             f"(key {section.key!r}, keywords {clash})")
        order = list(self.sections)
        order.insert(order.index(before) if before is not None else len(order), section)
        self._set(tuple(order))

    def unregister(self, section: type[Section]) -> None:
        """Remove ``section`` (tests use this to undo :meth:`register`)."""
        self._set(tuple(s for s in self.sections if s is not section))

    def _set(self, sections: tuple[type[Section], ...]) -> None:
        self.sections = sections
        self.by_key = {s.key: s for s in sections}
        self.owners = {kw: s for s in sections for kw in s.keywords}
        self.synonyms = {old: new for s in sections for old, new in s.synonyms.items()}
        known = [kw for kw in TC_USAGE_ORDER if kw in self.owners]
        self.keywords = (*known, *(kw for kw in self.owners if kw not in known))
        self.words = frozenset((*self.owners, *self.synonyms))

    def readback_zeros(self) -> dict[str, dict[str, float] | None]:
        """Every ``tc -j`` option object a section can show, as the kernel shows it when unset."""
        out: dict[str, dict[str, float] | None] = {}
        for section in self.sections:
            out |= section.readback_zeros()
        return out


REGISTRY = Registry((Limit, Delay, LossModel, Duplicate, Corrupt, Reorder, Rate, Slot, TraceLink, Ecn, Seed,
                     Partition))
"""The sections netbed knows, in canonical order."""
