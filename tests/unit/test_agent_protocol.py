"""The agent's control protocol, run in-process on loopback (no Docker)."""

from __future__ import annotations

import base64
import json

import pytest

from netbed_agent import protocol
from netbed_agent.session import Session

protocol.default_ops()
SESSION = Session()


def call(op: str, /, **args: object) -> dict:
    return protocol.handle_line(json.dumps({"id": 1, "op": op, "args": args}).encode(), SESSION)


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b"not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[]", "bad_request"),
        (b'{"op": 1}', "bad_request"),
        (b'{"args": {}}', "bad_request"),
        (b'{"op": "nope"}', "unknown_op"),
        (b'{"op": "ping", "extra": 1}', "bad_request"),
        (b'{"op": "ping", "args": []}', "bad_request"),
        (b'{"op": "ping", "args": {"x": 1}}', "bad_request"),
        (b'{"op": "close", "args": {"fd": 999999}}', "bad_handle"),
    ],
)
def test_malformed_requests_get_typed_errors(line: bytes, kind: str) -> None:
    reply = protocol.handle_line(line, SESSION)
    assert reply["ok"] is False
    assert reply["error"]["kind"] == kind
    assert "id" in reply


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"family": "AF_BOGUS"}, "unknown address family 'AF_BOGUS'"),
        ({"type": "SOCK_NOPE"}, "unknown socket type 'SOCK_NOPE'"),
        ({"proto": "IPPROTO_NOPE"}, "unknown protocol 'IPPROTO_NOPE'"),
        ({"family": True}, "must be a name or a number"),
    ],
)
def test_bad_socket_arguments_are_named(args: dict, needle: str) -> None:
    reply = call("socket", **args)
    assert needle in reply["error"]["message"]


def test_bad_addresses_and_ports_are_named() -> None:
    fd = call("socket", family="AF_INET", type="SOCK_DGRAM")["result"]["fd"]
    try:
        for address, needle in [
            (["127.0.0.1", 65536], "port must be an integer in 0-65535, got 65536"),
            (["127.0.0.1", -1], "got -1"),
            (["localhost", 80], "literal IP address"),
            (["::1", 80], "not an IPv4 address"),
            ("127.0.0.1:80", "must be [host, port]"),
        ]:
            reply = call("connect", fd=fd, address=address)
            assert reply["ok"] is False and needle in reply["error"]["message"], (address, reply)
    finally:
        call("close", fd=fd)


def test_unknown_socket_option_is_named() -> None:
    fd = call("socket", family="AF_INET", type="SOCK_STREAM")["result"]["fd"]
    try:
        reply = call("setsockopt", fd=fd, level="SOL_SOCKET", option="SO_NOSUCHTHING", value=1)
        assert reply["error"]["message"] == "unknown socket option 'SO_NOSUCHTHING'"
        assert call("setsockopt", fd=fd, level="SOL_SOCKET", option="SO_REUSEADDR", value=1)["ok"]
        assert call("getsockopt", fd=fd, level="SOL_SOCKET", option="SO_REUSEADDR")["result"]["value"] == 1
    finally:
        call("close", fd=fd)


def test_udp_over_loopback_and_kernel_errors_carry_errno() -> None:
    a = call("socket", family="AF_INET", type="SOCK_DGRAM")["result"]["fd"]
    b = call("socket", family="AF_INET", type="SOCK_DGRAM")["result"]["fd"]
    try:
        port = call("bind", fd=b, address=["127.0.0.1", 0])["result"]["address"][1]
        sent = call("sendto", fd=a, data=base64.b64encode(b"hello").decode(), address=["127.0.0.1", port])
        assert sent["result"]["sent"] == 5
        got = call("recvfrom", fd=b, timeout=2)["result"]
        assert base64.b64decode(got["data"]) == b"hello"
        again = call("bind", fd=b, address=["127.0.0.1", port])
        assert again["error"]["errno_name"] == "EINVAL"
        empty = call("recv", fd=b, timeout=0.05)
        assert empty["error"]["kind"] == "timeout"
    finally:
        call("close", fd=a)
        call("close", fd=b)


def test_jobs_return_the_inner_result_or_error() -> None:
    job = call("job_start", op="ping", args={})["result"]["job"]
    assert call("job_wait", job=job)["result"]["pong"] is True
    job = call("job_start", op="nope", args={})["result"]["job"]
    assert call("job_wait", job=job)["error"]["kind"] == "unknown_op"
    assert call("job_wait", job=12345)["error"]["kind"] == "bad_handle"


def test_timeout_argument_is_bounded() -> None:
    fd = call("socket", family="AF_INET", type="SOCK_DGRAM")["result"]["fd"]
    try:
        reply = call("recv", fd=fd, timeout=1e9)
        assert "must be <= 600" in reply["error"]["message"]
    finally:
        call("close", fd=fd)
