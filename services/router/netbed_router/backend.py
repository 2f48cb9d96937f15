"""The contract both impairment backends implement, and the types they return.

A backend impairs the router's two directions (``netbed_core.directions``) independently:

- ``apply(direction, spec, match) -> Applied``: replace the direction's impairment with ``spec``
  (``Netem.to_dict()``'s form) for the packets ``match`` selects (None: all); counters restart;
- ``clear(direction) -> None``: pristine forwarding for that direction (idempotent);
- ``stats() -> BackendStats``: what each direction is set to and what it counted, as a
  ``netbed_core`` ``DirectionStats`` in which a counter the backend cannot measure is None;
- ``close() -> None``: clear everything and release resources (idempotent).

Backends: ``backend_kernel.KernelBackend`` (tc netem) and ``backend_userspace.UserspaceBackend``
(iptables NFQUEUE and the engine). Both run their commands through a :class:`Runner`, so tests
can give them a fake one and check the exact commands without root.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self

from netbed_core.direction_stats import DirectionStats
from netbed_core.directions import DIRECTIONS

#: How long one command (tc, ip, iptables, ethtool) may take before it counts as hung, seconds.
COMMAND_TIMEOUT_S = 15.0


class Runner(Protocol):
    """Runs one command (an argument list, never a shell string), optionally with ``input`` on
    its stdin, and returns its result without raising for a non-zero exit. Raises
    FileNotFoundError when the program is not installed, like ``subprocess.run``."""

    def __call__(self, argv: Sequence[str], *, input: str | None = None) -> subprocess.CompletedProcess[str]: ...


def run_command(argv: Sequence[str], *, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The default :class:`Runner`: ``subprocess.run`` with captured text output, no check,
    :data:`COMMAND_TIMEOUT_S`."""
    return subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                          check=False)


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did to one direction."""

    direction: str
    queued: bool
    """False when the spec does nothing (then the direction was cleared instead)."""
    seed: int | None
    """The seed in use; None when the backend does not choose one (tc netem without ``seed``)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Backend-specific, JSON-able: the kernel's interface, tc arguments and read-back."""


@dataclass(frozen=True)
class DirectionReport:
    """One direction in ``stats()``: its setting, its counters and backend-specific details."""

    active: bool
    spec: Mapping[str, Any] | None
    match: Mapping[str, Any] | None
    counters: DirectionStats
    details: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able extras (userspace: queue and worker state; kernel: interface and raw tc counters)."""

    def to_dict(self) -> dict[str, Any]:
        """The router agent's wire form: ``active``, ``spec``, ``match``, the counters flat
        (``DirectionStats.to_dict()``) and the details."""
        return {"active": self.active, "spec": self.spec, "match": self.match, **self.counters.to_dict(),
                **self.details}


@dataclass(frozen=True)
class BackendStats:
    """``stats()`` of a backend: per direction a :class:`DirectionReport`, plus the backend's state."""

    backend: str
    """"kernel" or "userspace"."""
    directions: Mapping[str, DirectionReport]
    details: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able backend state (interfaces, offloads, ...)."""

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, **self.details,
                "directions": {d: r.to_dict() for d, r in self.directions.items()}}


class Backend(ABC):
    """An impairment backend (see the module docstring). Use as a context manager to close it."""

    name: ClassVar[str]
    """"kernel" or "userspace"."""
    MEASURED: ClassVar[frozenset[str]]
    """The ``DirectionStats`` counters this backend measures; the others are always None."""

    @abstractmethod
    def apply(self, direction: str, spec: Mapping[str, Any], match: Mapping[str, Any] | None = None) -> Applied:
        """Impair ``direction`` per ``spec`` for packets matching ``match`` (None: all). Raises
        ValueError (NetemError is one) for a bad direction, spec or match."""

    @abstractmethod
    def clear(self, direction: str) -> None:
        """Pristine forwarding for ``direction``. Idempotent."""

    @abstractmethod
    def stats(self) -> BackendStats:
        """Setting and counters of both directions."""

    @abstractmethod
    def close(self) -> None:
        """Clear both directions and release everything. Idempotent."""

    def keep_queued(self, direction: str, on: bool) -> None:  # noqa: B027 - optional, a no-op by default
        """While ``on``, make ``apply`` and ``clear`` of ``direction`` fast and exactly timed (a
        scenario's steps); ``clear`` still means pristine behaviour for the packets. Off again,
        a cleared direction is pristine forwarding once more. Default: nothing to do (tc's
        ``replace`` is already one atomic change)."""

    @staticmethod
    def check_direction(direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction: must be one of {', '.join(DIRECTIONS)}, got {direction!r}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["COMMAND_TIMEOUT_S", "Applied", "Backend", "BackendStats", "DirectionReport", "Runner", "run_command"]
