"""The control protocol: one JSON object per line, in both directions.

Request:  {"id": 7, "token": "...", "op": "connect", "args": {"fd": 3, "address": ["10.77.1.10", 80]}}
Success:  {"id": 7, "ok": true, "result": {...}}
Failure:  {"id": 7, "ok": false, "error": {"kind": "os_error", "message": "...",
           "errno": 111, "errno_name": "ECONNREFUSED"}}

Error kinds: see ERROR_KINDS.  A malformed request gets an error response
and the connection stays usable; nothing a client sends can stop the agent,
and nothing it leaves behind outlives its connection (session.py).  The
bounds are in limits.py.
"""

from __future__ import annotations

import errno as errno_mod
import hmac
import json
import logging
import queue
import socket
import socketserver
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from . import processes, sockets, system, workloads
from .args import Args
from .errors import OperationTimeout, RequestError
from .job_ops import make_ops
from .limits import LISTEN_BACKLOG, MAX_CONNECTIONS, MAX_DEPTH, MAX_LINE_BYTES, MAX_NUMBER_CHARS, PIPELINE_DEPTH
from .session import Session

log = logging.getLogger("netbed_agent")

#: Every error kind a reply can carry (docs/agent-protocol.md).  `internal`
#: means a bug in the agent: no request, however malformed, should cause it.
ERROR_KINDS = frozenset({
    "bad_json", "bad_request", "unauthorized", "unknown_op", "bad_handle", "bad_netem", "busy",
    "timeout", "os_error", "command_failed", "internal",
})
#: Operations after which the connection's sockets and jobs are gone: the
#: harness runs them between tests to return a host to a known state.
CLEARS_SESSION = frozenset({"reset"})

Op = Callable[[Args], dict[str, Any]]
OPS: dict[str, Op] = {}


def register(ops: Mapping[str, Op]) -> None:
    OPS.update(ops)


def error(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message, **extra}}


def dispatch(op: Any, raw_args: Any, session: Session | None = None) -> dict[str, Any]:
    """Run one operation; always returns a response (never raises)."""
    if not isinstance(op, str):
        return error("bad_request", f"'op' must be a string, got {op!r}")
    func = OPS.get(op)
    if func is None:
        return error("unknown_op", f"unknown op {op!r}; known: {', '.join(sorted(OPS))}")
    try:
        result = func(Args(op, raw_args, session))
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
    if op in CLEARS_SESSION and session is not None:
        session.clear()
    if "__response__" in result:
        return dict(result["__response__"])
    return {"ok": True, "result": result}


class _BadNumber(ValueError):
    pass


def _parse_int(text: str) -> int:
    # Bounded before conversion: int() of a long digit string is quadratic
    # (and over 4,300 digits Python refuses it with a ValueError).
    if len(text) > MAX_NUMBER_CHARS:
        raise _BadNumber(f"a number has {len(text)} digits; at most {MAX_NUMBER_CHARS}")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _BadNumber(f"a number has {len(text)} characters; at most {MAX_NUMBER_CHARS}")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _BadNumber(f"number {text} is out of range")
    return value


def _parse_constant(text: str) -> Any:
    raise _BadNumber(f"{text} is not a JSON number")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


def _too_deep(value: Any, limit: int) -> bool:
    """True if `value` nests deeper than `limit` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_request(line: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(request, None) or (None, error reply) for one line."""
    try:
        text = line.decode("utf-8")
        request = _DECODER.decode(text.strip())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, {**error("bad_json", f"request is not valid JSON: {exc}"), "id": None}
    except _BadNumber as exc:
        return None, {**error("bad_request", f"request rejected: {exc}"), "id": None}
    except RecursionError:
        return None, {**error("bad_request", f"request nests deeper than {MAX_DEPTH} levels"), "id": None}
    if not isinstance(request, dict):
        kind = type(request).__name__
        return None, {**error("bad_request", f"request must be a JSON object, got {kind}"), "id": None}
    if _too_deep(request, MAX_DEPTH):
        return None, {**error("bad_request", f"request nests deeper than {MAX_DEPTH} levels"), "id": None}
    return request, None


def _token_ok(given: Any, expected: str | None) -> bool:
    if expected is None:
        return True  # in-process use without a token (unit tests, --no-token)
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def handle_line(line: bytes, session: Session | None = None, token: str | None = None) -> dict[str, Any]:
    """The reply to one request line (never raises)."""
    request, failure = parse_request(line)
    if request is None:
        assert failure is not None
        return failure
    request_id = request.get("id")
    if not isinstance(request_id, int | str | None) or isinstance(request_id, bool):
        return {**error("bad_request", "'id' must be an integer, a string or null"), "id": None}
    unknown = sorted(set(request) - {"id", "op", "args", "token"})
    if unknown:
        response = error("bad_request", f"unknown request field(s) {', '.join(map(repr, unknown))}")
    elif not _token_ok(request.get("token"), token):
        # Nothing runs: the software under test shares this host's namespaces.
        response = error("unauthorized", "missing or wrong 'token'; the harness reads it from the container's "
                                         "NETBED_AGENT_TOKEN")
    elif "op" not in request:
        response = error("bad_request", "request has no 'op'")
    else:
        response = dispatch(request["op"], request.get("args"), session)
    response["id"] = request_id
    return response


def encode(response: dict[str, Any]) -> bytes:
    return json.dumps(response, separators=(",", ":")).encode() + b"\n"


_EOF = object()


class _Ready:
    """A reply the reader made itself (an over-long line), queued in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class Handler(socketserver.StreamRequestHandler):
    """One control connection: this thread reads lines, a second one runs them.

    Reading goes on while an operation runs, so a client that goes away is
    noticed at once: its session is cleared, which wakes and ends whatever
    it left blocked.
    """

    server: Server
    rbufsize = 65536

    def setup(self) -> None:
        super().setup()
        self.session = Session()
        self.lines: queue.Queue[object] = queue.Queue(PIPELINE_DEPTH)
        self.closing = threading.Event()
        self.write_lock = threading.Lock()

    def handle(self) -> None:
        if not self.server.enter():
            self._send(error("busy", f"the agent already serves {MAX_CONNECTIONS} connections; close one")
                       | {"id": None})
            return
        worker = threading.Thread(target=self._run_requests, name="agent-requests", daemon=True)
        worker.start()
        try:
            self._read_lines()
        finally:
            self.closing.set()
            self.session.clear()
            self._put(_EOF)
            worker.join()
            self.session.clear()  # anything the last request created while the first clear ran
            self.server.leave()

    def _read_lines(self) -> None:
        while not self.closing.is_set():
            try:
                line = self.rfile.readline(MAX_LINE_BYTES + 1)
            except OSError:
                return
            if not line:
                return
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                if not self._skip_rest_of_line():
                    return
                reply = error("bad_request", f"request line longer than {MAX_LINE_BYTES} bytes; skipped")
                self._put(_Ready(encode(reply | {"id": None})))
                continue
            if line.strip():
                self._put(line)

    def _skip_rest_of_line(self) -> bool:
        """Discard up to the next newline without buffering it; False at end of stream."""
        while True:
            try:
                chunk = self.rfile.readline(65536)
            except OSError:
                return False
            if not chunk:
                return False
            if chunk.endswith(b"\n"):
                return True

    def _put(self, item: object) -> None:
        while True:
            try:
                self.lines.put(item, timeout=0.5)
                return
            except queue.Full:
                if self.closing.is_set() and item is not _EOF:
                    return

    def _run_requests(self) -> None:
        while True:
            item = self.lines.get()
            if item is _EOF:
                return
            if isinstance(item, _Ready):
                reply = item.data
            elif self.closing.is_set() or not isinstance(item, bytes):
                continue  # the client is gone: run nothing more for it
            else:
                reply = encode(handle_line(item, self.session, self.server.token))
            if not self._write(reply):
                self.closing.set()
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)  # ends the reader too
                except OSError:
                    pass

    def _write(self, data: bytes) -> bool:
        with self.write_lock:
            try:
                self.wfile.write(data)
                self.wfile.flush()
                return True
            except OSError:
                return False

    def _send(self, response: dict[str, Any]) -> bool:
        return self._write(encode(response))


class Server(socketserver.ThreadingTCPServer):
    """The agent's control server: at most MAX_CONNECTIONS at once, each owning its work."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG  # the listen() backlog; socketserver reads this name

    def __init__(self, address: tuple[str, int], token: str | None = None,
                 handler: type[socketserver.BaseRequestHandler] = Handler) -> None:
        self.token = token
        self._active = 0
        self._active_lock = threading.Lock()
        super().__init__(address, handler)

    def enter(self) -> bool:
        with self._active_lock:
            if self._active >= MAX_CONNECTIONS:
                return False
            self._active += 1
            return True

    def leave(self) -> None:
        with self._active_lock:
            self._active -= 1

    @property
    def active_connections(self) -> int:
        with self._active_lock:
            return self._active


def default_ops() -> None:
    register(sockets.OPS)
    register(workloads.OPS)
    register(system.OPS)
    register(processes.OPS)
    register(make_ops(dispatch))
