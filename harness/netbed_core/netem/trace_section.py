"""``trace NAME`` (netbed's own): the direction's rate follows a recorded link trace
(Mahimahi's format, ``netbed_core.trace``) uploaded to the router under NAME.

The userspace engine replays it (``netbed_router/trace_link.py``); tc netem has nothing that
does, so the kernel backend refuses it, naming the remedy. Excludes ``rate`` and ``slot``
(``combine.py``): the trace is the link's rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..trace import TraceError, check_name
from .checks import NetemError
from .section import NetemView, Section, Tokens

__all__ = ["KERNEL_REMEDY", "TraceLink"]

#: What to do when the kernel backend is asked for a trace.
KERNEL_REMEDY = ("tc netem cannot replay a recorded trace; run the userspace backend "
                 "(NETBED_BACKEND=userspace make up)")


@dataclass(frozen=True)
class TraceLink(Section):
    """``trace NAME``: delivery opportunities from the trace named ``name``."""

    key: ClassVar[str] = "trace"
    keywords: ClassVar[tuple[str, ...]] = ("trace",)

    name: str

    def __post_init__(self) -> None:
        try:
            check_name(self.name)
        except TraceError as exc:
            raise NetemError(f"netem: {exc}", token=str(self.name), expected="a trace name like cellular") from None

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        return TraceLink(tokens.need(keyword, "a trace name", "a trace name like cellular"))

    def tc_args(self) -> list[str]:
        raise NetemError(f"netem: trace {self.name}: {KERNEL_REMEDY}", token="trace", expected="no trace")

    def text_args(self) -> list[str]:
        return ["trace", self.name]

    def describe(self) -> str:
        return f"rate from trace {self.name}"

    def lint(self, netem: NetemView) -> list[str]:
        return []

    def readback(self) -> dict[str, Any]:
        raise NetemError(f"netem: trace {self.name}: {KERNEL_REMEDY}", token="trace", expected="no trace")
