"""Property-based fuzzing of the agent protocol (issue #12): random and mutated requests
against a real agent server on loopback.

Properties, for every line a client can send:
- the agent answers with one well-formed JSON object: `ok` true, or an error whose kind is
  in the documented set and is never `internal` (a bug);
- the connection stays open and usable (a ping with the token answers);
- when the connections are gone, so are their threads (nothing leaks).

Budget: the hypothesis profile named by NETBED_FUZZ_PROFILE.  `quick` (the default, what
`make test` runs): 200 examples per target, about 6 s of CPU (wall time grows with load).  `long`
(e.g. nightly): 20,000 examples per target, no per-example deadline.

Safety: the fuzzed agent runs in this process with real sockets, so every address is
checked before any socket call: only loopback addresses and abstract AF_UNIX names, no raw
sockets, no SO_BINDTODEVICE.  A request outside that gets `bad_request` (a documented kind);
no fuzzed packet can leave the machine.  Timeouts are capped at 0.03 s to bound each example.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from agent_server import TOKEN, eventually, running_agent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbed_agent import args as args_mod
from netbed_agent import names, protocol, workloads
from netbed_agent.errors import RequestError

# quick is derandomized (the same inputs every `make test`: red only for a change, never by
# luck); long draws fresh inputs each run.
settings.register_profile("quick", max_examples=200, deadline=5000, database=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=20_000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("NETBED_FUZZ_PROFILE", "quick")

FUZZ_TIMEOUT_S = 0.03
DOCUMENTED_KINDS = {"bad_json", "bad_request", "unauthorized", "unknown_op", "bad_handle", "bad_netem", "busy",
                    "timeout", "os_error", "command_failed"}  # not "internal"
OPS = sorted(protocol.OPS)
ARG_NAMES = ["fd", "family", "type", "proto", "address", "timeout", "data", "bufsize", "flags", "level", "option",
             "value", "value_bytes", "buflen", "backlog", "how", "count", "size", "rate_pps", "first_seq",
             "duration_s", "expect", "idle_s", "record_tos", "nbytes", "chunk", "seed", "shutdown", "max_bytes",
             "op", "args", "job", "name"]


# -- the safety net: nothing fuzzed may leave loopback --------------------------------------
@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_address, real_type, real_option = names.address, names.sock_type, names.option

    def address(fam: int, value: Any) -> Any:
        result = real_address(fam, value)
        if fam == socket.AF_UNIX:
            if not str(result).startswith("\0"):
                raise RequestError("fuzz: only abstract AF_UNIX names")
        elif result[0] and not ipaddress.ip_address(result[0].split("%")[0]).is_loopback:
            raise RequestError("fuzz: only loopback addresses")
        return result

    def sock_type(value: Any) -> int:
        kind = real_type(value)
        if kind == socket.SOCK_RAW:
            raise RequestError("fuzz: no raw sockets")
        return kind

    def option(value: Any) -> int:
        number = real_option(value)
        if number == socket.SO_BINDTODEVICE:
            raise RequestError("fuzz: no SO_BINDTODEVICE")
        return number

    monkeypatch.setattr(names, "address", address)
    monkeypatch.setattr(names, "sock_type", sock_type)
    monkeypatch.setattr(names, "option", option)
    monkeypatch.setattr(args_mod, "MAX_TIMEOUT_S", FUZZ_TIMEOUT_S)
    monkeypatch.setattr(workloads, "MAX_TIMEOUT_S", FUZZ_TIMEOUT_S)
    yield


# -- strategies ------------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
domain_values = st.one_of(
    st.integers(min_value=-1, max_value=6),
    st.sampled_from(["AF_INET", "AF_INET6", "AF_UNIX", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_SEQPACKET",
                     "SOL_SOCKET", "IPPROTO_TCP", "IPPROTO_UDP", "SO_REUSEADDR", "SO_RCVBUF", "TCP_NODELAY",
                     "MSG_PEEK", "MSG_DONTWAIT", "SHUT_RD", "SHUT_WR", "SHUT_RDWR", "ping", "socket",
                     "net.ipv4.ip_forward", "127.0.0.1", "::1", "nope"]),
    st.builds(lambda port: ["127.0.0.1", port], st.integers(min_value=-2, max_value=70000)),
    st.builds(lambda port: ["::1", port, 0, 0], st.integers(min_value=0, max_value=65535)),
    st.just(["", 0]), st.just("\0netbed-fuzz"),
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
    st.floats(min_value=0, max_value=FUZZ_TIMEOUT_S),
)
arg_dicts = st.dictionaries(st.one_of(st.sampled_from(ARG_NAMES), st.text(max_size=6)),
                            st.one_of(domain_values, json_values), max_size=6)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.one_of(st.sampled_from(OPS), st.text(max_size=10), json_values))
    request: dict[str, Any] = {"id": draw(st.one_of(st.integers(0, 1 << 40), json_scalars)), "op": op,
                               "token": TOKEN}
    args = draw(st.one_of(arg_dicts, json_values))
    if isinstance(args, dict) and op in OPS:
        args.setdefault("timeout", draw(st.floats(min_value=0, max_value=FUZZ_TIMEOUT_S)))
        if op == "job_start":
            args["op"] = draw(st.sampled_from(OPS))
            args["args"] = draw(arg_dicts)
    request["args"] = args
    if draw(st.booleans()):
        del request["args"]
    if draw(st.integers(0, 9)) == 0:
        request[draw(st.text(max_size=5))] = draw(json_scalars)
    return request


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A valid request's bytes with a few byte-level edits (flip, insert, delete, repeat)."""
    data = bytearray(json.dumps(draw(requests())).encode())
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "insert", "delete", "repeat"]))
        if edit == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif edit == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 16))] * draw(st.integers(1, 50))
    return bytes(data).replace(b"\n", b" ")


# -- the properties -------------------------------------------------------------------------
class Conversation:
    def __init__(self, server: protocol.Server) -> None:
        self.sock = socket.create_connection(server.server_address[:2], timeout=10)
        self.file = self.sock.makefile("rwb")

    def exchange(self, line: bytes) -> dict[str, Any]:
        self.file.write(line + b"\n")
        self.file.flush()
        reply_line = self.file.readline()
        assert reply_line, f"the agent closed the connection after {line[:200]!r}"
        reply = json.loads(reply_line)
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool) and "id" in reply, reply
        if not reply["ok"]:
            kind = reply["error"]["kind"]
            assert kind in DOCUMENTED_KINDS, f"{kind}: {reply['error']['message']} for {line[:300]!r}"
            assert isinstance(reply["error"]["message"], str)
        return reply

    def still_usable(self) -> None:
        reply = self.exchange(json.dumps({"id": "check", "op": "ping", "token": TOKEN}).encode())
        assert reply == {"ok": True, "result": {"pong": True, "role": "unknown"}, "id": "check"}

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _lines_are_answered(server: protocol.Server, strategy: st.SearchStrategy[bytes]) -> None:
    conversation = Conversation(server)

    @settings(settings.get_profile(PROFILE))
    @given(strategy)
    def one(line: bytes) -> None:
        conversation.exchange(line)
        conversation.still_usable()

    try:
        one()
    finally:
        conversation.close()


@pytest.mark.usefixtures("loopback_only")
@pytest.mark.parametrize("target", ["requests", "mutated"])
def test_every_request_gets_a_documented_reply_and_nothing_leaks(target: str) -> None:
    strategy = requests().map(lambda r: json.dumps(r).encode()) if target == "requests" else mutated_lines()
    with running_agent() as server:
        before = threading.active_count()
        _lines_are_answered(server, strategy)
        assert eventually(lambda: server.active_connections == 0)
        assert eventually(lambda: threading.active_count() <= before, timeout_s=5.0), \
            f"{threading.active_count() - before} threads outlived their connection"
