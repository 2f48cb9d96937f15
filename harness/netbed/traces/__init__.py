"""Link traces for ``trace NAME`` (Mahimahi's format, ``netbed_core.trace``): the bundled
synthetic ones (``generate.py`` writes them and states their model) and files of yours.

    router.upload_trace("cell", "cellular-30s")         # a bundled trace, by its name
    router.upload_trace("mine", "/path/to/recorded.down")
    router.impair("delay 20ms trace cell", direction="to-client")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from netbed_core.trace import Trace, TraceError, parse_trace

from ..errors import NetbedError

HERE = Path(__file__).parent


class TraceFileError(NetbedError):
    """A trace file that cannot be used; the message names the file and the line."""


class TraceRouter(Protocol):
    def call(self, op: str, /, **args: Any) -> dict[str, Any]: ...


def bundled() -> list[str]:
    """The names of the bundled traces."""
    return sorted(p.stem for p in HERE.glob("*.trace"))


def load(source: str | Path, name: str) -> Trace:
    """The trace in file ``source``, or the bundled trace of that name, as trace ``name``."""
    path = Path(source)
    if not path.exists() and (HERE / f"{source}.trace").exists():
        path = HERE / f"{source}.trace"
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise TraceFileError(f"cannot read trace {source}: {exc.strerror or exc} "
                             f"(bundled: {', '.join(bundled())})") from None
    except UnicodeDecodeError as exc:
        raise TraceFileError(f"{path}: not a text trace ({exc.reason} at byte {exc.start})") from None
    try:
        return parse_trace(text, name, str(path))
    except TraceError as exc:
        raise TraceFileError(str(exc)) from None


def upload(router: TraceRouter, name: str, source: str | Path) -> dict[str, Any]:
    """Check the trace here (errors name the file and line), then send it to the router."""
    trace = load(source, name)
    return router.call("trace_put", name=name, text=trace.to_text())


__all__ = ["TraceFileError", "bundled", "load", "upload"]
