"""The router's trace operations: ``trace_put`` (upload a Mahimahi trace under a name, for
``trace NAME`` in a netem line) and ``trace_list``; and the check that refuses a trace on the
kernel backend, naming the remedy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netbed_agent.args import Args
from netbed_agent.errors import RequestError
from netbed_core.netem import Netem
from netbed_core.netem.trace_section import KERNEL_REMEDY, TraceLink

from .trace_link import STORE


def refuse_trace_on(backend_name: str, netem: Netem, where: str) -> None:
    """A ``trace`` on the kernel backend is a bad_netem error naming the remedy; a trace that
    was never uploaded too (before anything changes)."""
    section = netem.raw(TraceLink)
    if not isinstance(section, TraceLink):
        return
    if backend_name == "kernel":
        raise RequestError(f"{where}: trace {section.name}: {KERNEL_REMEDY}", kind="bad_netem")
    try:
        STORE.get(section.name)
    except ValueError as exc:
        raise RequestError(f"{where}: {exc}", kind="bad_netem") from None


def op_trace_put(args: Args) -> dict[str, Any]:
    """Keep ``text`` (a Mahimahi trace: one ms timestamp per line) as trace ``name``."""
    name = args.str("name", required=True)
    text = args.str("text", required=True)
    args.finish()
    try:
        return STORE.put(name, text)
    except ValueError as exc:
        raise RequestError(f"trace_put: {exc}", kind="bad_request") from None


def op_trace_list(args: Args) -> dict[str, Any]:
    args.finish()
    return {"traces": STORE.names()}


TRACE_OPS: dict[str, Callable[[Args], dict[str, Any]]] = {"trace_put": op_trace_put, "trace_list": op_trace_list}

__all__ = ["TRACE_OPS", "refuse_trace_on"]
