"""netem impairments for netbed: parse tc-netem syntax, validate, lint and render it.

    >>> from netbed_core.netem import parse, lint
    >>> n = parse("delay 100ms 10ms distribution normal loss 1%")
    >>> n.to_tc_args()
    ['limit', '1000', 'delay', '100ms', '10ms', 'distribution', 'normal', 'loss', 'random', '1%']

A configuration is made of sections (one small class each, see ``section.py``), listed in one
registry (``registry.py``). Standard library only (this package is copied into the router
image). See docs/netem.md and docs/extending.md.
"""

from __future__ import annotations

from .lint import lint
from .model import (
    Corrupt,
    Delay,
    Duplicate,
    GemodelLoss,
    Loss,
    Netem,
    NetemError,
    RandomLoss,
    Rate,
    Reorder,
    Slot,
    StateLoss,
    from_dict,
)
from .parse import parse
from .registry import REGISTRY, Registry
from .render import describe, to_tc_args, to_text
from .scalars import Ecn, Limit, Partition, Seed
from .section import NetemView, Section, Tokens

__all__ = [
    "REGISTRY",
    "Corrupt",
    "Delay",
    "Duplicate",
    "Ecn",
    "GemodelLoss",
    "Limit",
    "Loss",
    "Netem",
    "NetemError",
    "NetemView",
    "Partition",
    "RandomLoss",
    "Rate",
    "Registry",
    "Reorder",
    "Section",
    "Seed",
    "Slot",
    "StateLoss",
    "Tokens",
    "describe",
    "from_dict",
    "lint",
    "parse",
    "to_tc_args",
    "to_text",
]
