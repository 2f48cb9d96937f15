"""The router's impairments from Python: apply, restore, read counters.

    with testbed.router.impair("delay 50ms loss 5%", direction="to-server"):
        ...                       # active here
                                  # the previous setting is back here

Each call replaces the setting of the direction(s) it names, like
`tc qdisc replace`.  netem text is checked here first (same parser as the
router), so a typo fails before anything changes.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

from netbed_core.directions import expand
from netbed_core.netem import Netem, parse


class ImpairableRouter(Protocol):
    """What an Impairment uses of its router (a ``netbed.host.Router``).

    A protocol rather than an import of host.py, which imports this module (issue #11)."""

    def call(self, op: str, /, **args: Any) -> dict[str, Any]: ...

    def impair_status(self) -> dict[str, Any]: ...


class NetemLintWarning(UserWarning):
    """netem accepts the setting, but it does not do what it seems to (see docs/netem.md)."""


class Impairment:
    """An applied impairment; as a context manager, restores what was there before."""

    def __init__(self, router: ImpairableRouter, netem: Netem, direction: str, match: str | None,
                 previous: dict[str, Any]) -> None:
        self.router = router
        self.netem = netem
        self.direction = direction
        self.match = match
        self.previous = previous
        self.warnings: list[str] = []

    def __enter__(self) -> Impairment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Put back, per direction, what was set before this impairment."""
        for direction, before in self.previous.items():
            if before is None:
                self.router.call("clear", direction=direction)
            else:
                self.router.call("impair", direction=direction, spec=before["spec"], match=before["match"])


def apply(router: ImpairableRouter, netem: str | Netem, direction: str = "both",
          match: str | None = None) -> Impairment:
    parsed = parse(netem) if isinstance(netem, str) else netem
    names = expand(direction)
    status = router.impair_status()
    previous = {d: status["directions"][d]["impairment"] for d in names if d in status["directions"]}
    reply = router.call("impair", direction=direction, spec=parsed.to_dict(), match=match)
    handle = Impairment(router, parsed, direction, match, previous)
    handle.warnings = list(reply.get("warnings", []))
    for message in handle.warnings:
        warnings.warn(message, NetemLintWarning, stacklevel=3)
    return handle
