"""The control protocol: one JSON object per line, in both directions.

Request:  {"id": 7, "op": "connect", "args": {"fd": 3, "address": ["10.77.1.10", 80]}}
Success:  {"id": 7, "ok": true, "result": {...}}
Failure:  {"id": 7, "ok": false, "error": {"kind": "os_error", "message": "...",
           "errno": 111, "errno_name": "ECONNREFUSED"}}

Error kinds: bad_json, bad_request, unknown_op, bad_handle, timeout,
os_error, command_failed, internal.  A malformed request gets an error
response and the connection stays usable; nothing a client sends can stop
the agent.
"""

from __future__ import annotations

import errno as errno_mod
import json
import logging
import socketserver
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from . import jobs, sockets, system, workloads
from .args import Args
from .errors import OperationTimeout, RequestError

log = logging.getLogger("netbed_agent")

#: Longest request line accepted, bytes.  Bigger payloads belong in a
#: workload operation, not in one JSON line.
MAX_LINE = 64 * 1024 * 1024

Op = Callable[[Args], dict[str, Any]]
OPS: dict[str, Op] = {}


def register(ops: Mapping[str, Op]) -> None:
    OPS.update(ops)


def error(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message, **extra}}


def dispatch(op: Any, raw_args: Any) -> dict[str, Any]:
    """Run one operation; always returns a response (never raises)."""
    if not isinstance(op, str):
        return error("bad_request", f"'op' must be a string, got {op!r}")
    func = OPS.get(op)
    if func is None:
        return error("unknown_op", f"unknown op {op!r}; known: {', '.join(sorted(OPS))}")
    try:
        result = func(Args(op, raw_args))
    except RequestError as exc:
        return error(exc.kind, str(exc))
    except OperationTimeout as exc:
        return error("timeout", f"{op}: {exc}")
    except OSError as exc:
        code = exc.errno or 0
        return error(
            "os_error",
            f"{op}: {exc.strerror or exc}",
            errno=code,
            errno_name=errno_mod.errorcode.get(code, ""),
        )
    except Exception as exc:  # noqa: BLE001 - the agent must survive any bug
        log.error("op %s failed:\n%s", op, traceback.format_exc())
        return error("internal", f"{op}: internal error {type(exc).__name__}: {exc}")
    if "__response__" in result:
        return dict(result["__response__"])
    return {"ok": True, "result": result}


def handle_line(line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {**error("bad_json", f"request is not valid JSON: {exc}"), "id": None}
    if not isinstance(request, dict):
        kind = type(request).__name__
        return {**error("bad_request", f"request must be a JSON object, got {kind}"), "id": None}
    request_id = request.get("id")
    unknown = sorted(set(request) - {"id", "op", "args"})
    if unknown:
        response = error("bad_request", f"unknown request field(s) {', '.join(map(repr, unknown))}")
    elif "op" not in request:
        response = error("bad_request", "request has no 'op'")
    else:
        response = dispatch(request["op"], request.get("args"))
    response["id"] = request_id
    return response


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while True:
            try:
                line = self.rfile.readline(MAX_LINE + 1)
            except OSError:
                return
            if not line:
                return
            if len(line) > MAX_LINE:
                response = error("bad_request", f"request line longer than {MAX_LINE} bytes")
                self._send(response)
                return  # the rest of that line cannot be framed: drop the connection
            if not line.strip():
                continue
            if not self._send(handle_line(line)):
                return

    def _send(self, response: dict[str, Any]) -> bool:
        try:
            self.wfile.write(json.dumps(response, separators=(",", ":")).encode() + b"\n")
            self.wfile.flush()
            return True
        except OSError:
            return False


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def default_ops() -> None:
    register(sockets.OPS)
    register(workloads.OPS)
    register(system.OPS)
    register(jobs.make_ops(dispatch))
