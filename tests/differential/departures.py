"""The documented departures from tc (docs/netem.md, "Rejected by netbed although tc accepts
them" and what follows): each is a name, the docs' reason, and how to recognise it.

The differential test counts a disagreement with tc as agreement only when it falls in one of
these classes; anything else fails the test with the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: netbed refuses, tc accepts: (class, pattern for netbed's error message, pattern the offending
#: token must match or None). The token pattern keeps a broad message ("expected a whole
#: number") from hiding a real disagreement: only the named forms count as the departure.
REFUSED_BY_NETBED: list[tuple[str, re.Pattern[str], re.Pattern[str] | None]] = [
    ("below tc's resolution: tc would send 0", re.compile(r"below (tc's resolution|1us, tc's|1ns, tc's)"), None),
    ("jitter above what the kernel keeps (INT_MAX ns)", re.compile(r"the kernel keeps: netem would silently cap"),
     None),
    ("limit given as a size or not a whole number", re.compile(r"bad limit"), re.compile(r"[^0-9]|^0")),
    ("abbreviated or repeated keyword", re.compile(r"unknown keyword|given twice"), None),
    ("leading zero where tc reads octal", re.compile(r"without a leading zero"), re.compile(r"^-?0[0-9]")),
    ("hex, exponent, fraction or sign where a whole number or a time is wanted",
     re.compile(r"expected a whole number|expected an integer|expected a time like"),
     re.compile(r"0[xX]|[eE]|\.|^-")),
    ("a value tc would overflow or wrap silently", re.compile(r"tc can represent|expected at most|a size from"),
     None),
    ("zero, or a rate below 8 bit/s, which tc reads as off",
     re.compile(r"expected at least 8bit|rate above zero|expected a number from 1|a size from 1"),
     re.compile(r"^0|bit$")),
    ("distribution table tc may not have", re.compile(r"unknown distribution|no slot distribution table"), None),
    ("a percentage without digits (tc reads % as 0)", re.compile(r"expected a percentage like"),
     re.compile(r"^[^0-9]*$")),
    ("a negative time", re.compile(r"not negative"), re.compile(r"^-")),
]

#: netbed accepts, tc (iproute2 6.1) refuses: (class, predicate on the line's tokens).
ACCEPTED_BY_NETBED: list[tuple[str, re.Pattern[str]]] = [
    ("seed: iproute2 6.3 or later (the kernel backend says so; the userspace engine seeds)",
     re.compile(r"\bseed\b")),
    ("partition: netbed's own keyword (tc gets loss 100%)", re.compile(r"\bpartition\b")),
    ("distribution uniform: netem's built-in jitter, no table", re.compile(r"\bdistribution uniform\b")),
]

DUPLICATE_CORRELATION = "duplicate correlation: iproute2 drops it; the kernel backend sends it"


def refused_class(message: str, token: str | None) -> str | None:
    """The documented class of a netbed refusal (its message and offending token) of a line tc
    accepts, or None."""
    for name, pattern, token_pattern in REFUSED_BY_NETBED:
        if pattern.search(message) and (token_pattern is None or token_pattern.search(token or "")):
            return name
    return None


def accepted_class(line: str) -> str | None:
    """The documented class of a line netbed accepts and tc refuses, or None."""
    return next((name for name, pattern in ACCEPTED_BY_NETBED if pattern.search(line)), None)


#: What the kernel gives a NEW netem qdisc when an attribute is absent (netem_init): the kernel
#: backend always builds a new qdisc (alternating handles), so an attribute holding exactly
#: these values is the same configuration as no attribute.
FRESH_DEFAULTS: dict[str, Any] = {"corr": (0, 0, 0), "reorder": (0, 0), "corrupt": (0, 0), "ecn": 0}


def as_applied(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` without attributes that carry a new qdisc's defaults."""
    return {k: v for k, v in options.items() if FRESH_DEFAULTS.get(k, object()) != v}


def duplicate_correlation_fixed(original: Mapping[str, Any], ours: Mapping[str, Any]) -> bool:
    """True when the only difference is the duplicate correlation that tc dropped from the
    user's line and our arguments carry (the other correlations as tc read them)."""
    a, b = as_applied(original), as_applied(ours)
    if {k: v for k, v in a.items() if k != "corr"} != {k: v for k, v in b.items() if k != "corr"}:
        return False
    theirs = a.get("corr", (0, 0, 0))
    mine = b.get("corr", (0, 0, 0))
    return bool(theirs[:2] == mine[:2] and theirs[2] == 0 and mine[2] != 0)
