"""Render a :class:`Netem` back to text: exact ``tc`` tokens, netbed syntax, or a summary.

* :func:`to_tc_args` -- the arguments after ``tc qdisc replace dev X root netem``, in
  canonical order, with explicit units and exact numbers, so that
  ``parse(" ".join(to_tc_args(n))) == n`` for every ``n`` except a partition (which tc knows
  as ``loss 100%``).
* :func:`to_text` -- netbed syntax: like the tc arguments, but ``partition`` stays
  ``partition`` and a default ``limit`` is left out; ``parse(to_text(n)) == n`` always.
* :func:`describe` -- a short human summary for logs and reports.

Each is a loop over the sections (:meth:`Netem.sections`, in registry order); what a section
looks like is said by the section itself. The functions take a :class:`~.section.NetemView`
(a ``Netem`` is one) rather than importing model.py, so that model.py's ``to_tc_args()`` and
``__str__`` can import this module at the top without an import circle. Standard library only.
"""

from __future__ import annotations

from .section import NetemView

__all__ = ["describe", "to_tc_args", "to_text"]


def to_tc_args(netem: NetemView) -> list[str]:
    """The exact tokens for ``tc qdisc replace dev X root netem <tokens>``.

    Canonical order: ``limit delay [distribution] loss duplicate corrupt reorder [gap] rate slot
    ecn [seed]``. Times carry a unit (``100ms``, ``4350us``), percentages a ``%``, rates are in
    ``bit``; the limit is always given. A partition renders as ``loss 100%``.
    """
    return [arg for section in netem.sections() for arg in section.tc_args()]


def to_text(netem: NetemView) -> str:
    """netbed syntax for ``netem``: parses back to an equal model (``""`` when pristine)."""
    return " ".join(arg for section in netem.sections() for arg in section.text_args())


def describe(netem: NetemView) -> str:
    """A short one-line human summary, e.g. ``"delay 100ms ±10ms (normal), loss 1%, rate 10Mbit/s"``.

    Sections in registry order, settings that change no packet (limit, seed) last.
    """
    sections = netem.sections()
    ordered = [s for s in sections if not s.detail] + [s for s in sections if s.detail]
    parts = [text for s in ordered if (text := s.describe()) is not None]
    return ", ".join(parts) if parts else "no impairment"
