"""Warnings for settings netem accepts but that do nothing, or not what one would expect.

:func:`lint` never fails; it returns sentences that each say what is wrong and what to do.
Each section lints itself (:meth:`Section.lint`, given the whole setting for context); the
rules are listed (with their sources) in docs/netem.md. Standard library only.
"""

from __future__ import annotations

from .checks import FULL_PACKET_BYTES
from .model import Netem
from .rate import FAST_RATE_BITS_PER_S

__all__ = ["FAST_RATE_BITS_PER_S", "FULL_PACKET_BYTES", "lint"]


def lint(netem: Netem) -> list[str]:
    """Return warnings (possibly none) about ``netem``: by section, in registry order."""
    return [warning for section in netem.sections() for warning in section.lint(netem)]
