"""The agent's bounds, against a real server on loopback: each test reproduces one audit
finding (issue #12, findings 1, 12 and 13) and checks that it stays fixed."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest
from agent_server import TOKEN, Client, eventually, running_agent

from netbed_agent import jobs, limits, protocol


def _threads() -> int:
    return threading.active_count()


# -- finding 1: a request without the right token runs nothing ----------------------------
@pytest.mark.parametrize("token", [None, "", "wrong", 12345, ["unit-test-token"]])
def test_request_without_the_token_is_refused_and_runs_nothing(token: object) -> None:
    with running_agent() as server:
        bad = Client(server, token=None)
        request: dict[str, object] = {"id": 1, "op": "socket", "args": {}}
        if token is not None:
            request["token"] = token
        bad.send_line(json.dumps(request).encode() + b"\n")
        reply = bad.reply()
        assert reply["ok"] is False and reply["error"]["kind"] == "unauthorized"
        # Nothing ran: the refused connection holds no socket, and it is still usable.
        bad.token = TOKEN
        assert bad.call("close_all")["result"]["closed"] == 0
        bad.close()


# -- finding 12: malformed requests get bad_request and the connection stays usable --------
@pytest.mark.parametrize(
    "line",
    [
        b'{"id": 1, "op": "ping", "args": {"x": ' + b"9" * 5000 + b"}}",  # over 4,300 digits
        b'{"id": 1, "op": "ping", "args": {"x": 1' + b"0" * 60 + b".5}}",
        b'{"id": 1, "op": "ping", "args": {"x": 1e999}}',
        b'{"id": 1, "op": "ping", "args": {"x": NaN}}',
        b'{"id": 1, "op": "ping", "args": {"x": -Infinity}}',
        b'{"id": 1, "op": "ping", "args": ' + b"[" * 1000 + b"]" * 1000 + b"}",  # depth 1,000
        b'{"id": 1, "op": "ping", "args": ' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}",
        b'{"id": [1], "op": "ping"}',
    ],
    ids=["5000-digits", "long-float", "float-overflow", "nan", "infinity", "depth-1000", "depth-100", "list-id"],
)
def test_oversized_numbers_and_deep_nesting_get_bad_request(line: bytes) -> None:
    with running_agent() as server:
        client = Client(server)
        client.send_line(line + b"\n")
        reply = client.reply()
        assert reply["ok"] is False and reply["error"]["kind"] == "bad_request", reply
        assert client.call("ping")["ok"], "the connection must stay usable"


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("close", {"fd": [1]}),
        ("close", {"fd": {"a": 1}}),
        ("recv", {"fd": [1]}),
        ("job_wait", {"job": [1]}),
        ("job_wait", {"job": True}),
        ("socket", {"proto": 1 << 40}),
        ("setsockopt", {"fd": 1, "level": 1 << 40, "option": 1, "value": 1}),
        ("send_sequence", {"fd": 1, "count": 1, "first_seq": (1 << 64) + 5}),
        ("stream_send", {"fd": 1, "nbytes": 1, "seed": -1}),
        ("route_get", {"address": "-6"}),
        ("route_get", {"address": "help"}),
        ("sysctl", {"name": "net"}),
        ("sysctl", {"name": "net.ipv4\n"}),
        ("sysctl", {"name": "ü.x"}),
        ("bind", {"fd": 1, "address": ["127.0.0.1%lo", 0]}),
    ],
)
def test_ill_typed_arguments_get_bad_request_not_internal(op: str, args: dict) -> None:
    with running_agent() as server:
        client = Client(server)
        for family in ("AF_INET", "AF_UNIX"):
            client.call("socket", family=family, type="SOCK_DGRAM")
        reply = client.call(op, **args)
        assert reply["ok"] is False and reply["error"]["kind"] in ("bad_request", "bad_handle"), reply


@pytest.mark.parametrize("path", ["\ud800", "x" * 200, "a\0b"])
def test_bad_unix_paths_get_bad_request(path: str) -> None:
    with running_agent() as server:
        client = Client(server)
        fd = client.call("socket", family="AF_UNIX", type="SOCK_DGRAM")["result"]["fd"]
        reply = client.call("bind", fd=fd, address=path)
        assert reply["error"]["kind"] == "bad_request", reply


def test_an_over_long_line_is_skipped_with_a_reply_and_not_buffered() -> None:
    """A line over the cap gets bad_request; the agent reads past it and the next line works."""
    with running_agent() as server:
        client = Client(server)
        client.send_line(b"x" * (limits.MAX_LINE_BYTES * 3) + b"\n")
        reply = client.reply()
        assert reply["error"]["kind"] == "bad_request" and str(limits.MAX_LINE_BYTES) in reply["error"]["message"]
        assert client.call("ping")["ok"]


# -- finding 13: leaks and stalls -----------------------------------------------------------
def test_unwaited_jobs_are_freed_by_close_all_and_by_disconnect() -> None:
    """Jobs nobody waits for no longer fill the table for good."""
    with running_agent() as server:
        client = Client(server)
        for _ in range(limits.MAX_JOBS_PER_CONNECTION):
            assert client.call("job_start", op="ping", args={})["ok"]
        full = client.call("job_start", op="ping", args={})
        assert full["error"]["kind"] == "busy"
        client.call("close_all")
        assert client.call("job_start", op="ping", args={})["ok"], "close_all must free the jobs"
        # Another connection has its own table, and the first one's jobs go with it.
        other = Client(server)
        assert other.call("job_wait", job=1)["error"]["kind"] == "bad_handle"
        client.close()
        other.close()


def test_a_disconnected_clients_sockets_are_closed() -> None:
    with running_agent() as server:
        client = Client(server)
        fd = client.call("socket", family="AF_INET", type="SOCK_STREAM")["result"]["fd"]
        port = client.call("bind", fd=fd, address=["127.0.0.1", 0])["result"]["address"][1]
        client.call("listen", fd=fd)
        client.close()

        def port_free() -> bool:
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False
            finally:
                probe.close()

        assert eventually(port_free), "the listener outlived its connection"


@pytest.mark.parametrize("how", ["disconnect", "close_all"])
def test_blocked_operations_end_with_their_connection(how: str) -> None:
    """recv with a 600 s timeout, in the foreground and in jobs, ends within a second of the
    client leaving or sending close_all; the threads are gone (a live connection has two:
    its reader and its request runner)."""
    with running_agent() as server:
        before = _threads()
        client = Client(server)
        fd = client.call("socket", family="AF_INET", type="SOCK_DGRAM")["result"]["fd"]
        client.call("bind", fd=fd, address=["127.0.0.1", 0])
        for _ in range(20):
            client.call("job_start", op="recv", args={"fd": fd, "timeout": 600})
        client.call("job_start", op="send_sequence",
                    args={"fd": fd, "count": 5, "rate_pps": 1e-9, "address": ["127.0.0.1", 9], "timeout": 600})
        assert _threads() >= before + 21
        start = time.monotonic()
        if how == "disconnect":
            client.send_line(json.dumps({"id": 99, "op": "recv", "token": TOKEN,
                                         "args": {"fd": fd, "timeout": 600}}).encode() + b"\n")
            client.close()
        else:
            assert client.call("close_all")["result"]["closed"] == 1
        assert eventually(lambda: _threads() <= before + (2 if how == "close_all" else 0), timeout_s=3.0), \
            f"{_threads() - before} threads left"
        assert time.monotonic() - start < 3.0
        if how == "close_all":
            assert client.call("ping")["ok"]
            client.close()


def test_send_sequence_honours_its_timeout_at_a_tiny_rate() -> None:
    """rate_pps 1e-9 used to sleep ~31 years before the first send; now it stops at the timeout."""
    with running_agent() as server:
        client = Client(server)
        fd = client.call("socket", family="AF_INET", type="SOCK_DGRAM")["result"]["fd"]
        start = time.monotonic()
        reply = client.call("send_sequence", fd=fd, count=3, rate_pps=1e-9, address=["127.0.0.1", 9], timeout=0.5)
        elapsed = time.monotonic() - start
        assert reply["error"]["kind"] == "timeout" and "sent 1 of 3" in reply["error"]["message"], reply
        assert 0.4 < elapsed < 2.0


def test_a_burst_of_connections_is_served_without_waiting_in_the_backlog() -> None:
    """200 connections at once: each gets its ping answered (or a busy reply) within 1 s."""
    with running_agent() as server:
        socks = [socket.socket() for _ in range(200)]
        for sock in socks:
            sock.setblocking(False)
            sock.connect_ex(server.server_address[:2])
        slow = 0
        request = json.dumps({"id": 1, "op": "ping", "token": TOKEN}).encode() + b"\n"
        kinds = set()
        for sock in socks:
            sock.settimeout(5)
            start = time.monotonic()
            sock.sendall(request)
            reply = json.loads(sock.makefile("rb").readline())
            kinds.add("ok" if reply["ok"] else reply["error"]["kind"])
            slow += time.monotonic() - start > 1.0
        for sock in socks:
            sock.close()
        assert slow == 0
        assert kinds <= {"ok", "busy"}
        assert eventually(lambda: server.active_connections == 0)


def test_connections_beyond_the_limit_get_busy_and_the_rest_work() -> None:
    with running_agent() as server:
        clients = [Client(server) for _ in range(limits.MAX_CONNECTIONS)]
        assert eventually(lambda: server.active_connections == limits.MAX_CONNECTIONS)
        extra = Client(server)
        assert extra.reply()["error"]["kind"] == "busy"
        assert clients[-1].call("ping")["ok"]
        for client in clients:
            client.close()
        extra.close()


def test_job_results_and_echo_live_only_as_long_as_their_connection() -> None:
    """An echo service and a finished job's result are owned by their connection."""
    with running_agent() as server:
        before = _threads()
        client = Client(server)
        fd = client.call("socket", family="AF_INET", type="SOCK_STREAM")["result"]["fd"]
        port = client.call("bind", fd=fd, address=["127.0.0.1", 0])["result"]["address"][1]
        client.call("listen", fd=fd)
        client.call("echo", fd=fd)
        peers = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
        for peer in peers:
            peer.sendall(b"hi")
            assert peer.recv(10) == b"hi"
        job = client.call("job_start", op="sendall", args={"fd": fd, "data": base64.b64encode(b"x").decode()})
        assert job["ok"]
        client.close()
        assert eventually(lambda: _threads() <= before), f"{_threads() - before} threads left"
        for peer in peers:
            assert peer.recv(10) == b"", "the echo connection must be shut down with its owner"
            peer.close()


def test_running_jobs_are_bounded_for_the_whole_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_RUNNING", threading.BoundedSemaphore(3))
    with running_agent() as server:
        client = Client(server)
        fd = client.call("socket", family="AF_INET", type="SOCK_DGRAM")["result"]["fd"]
        client.call("bind", fd=fd, address=["127.0.0.1", 0])
        for _ in range(3):
            assert client.call("job_start", op="recv", args={"fd": fd, "timeout": 600})["ok"]
        assert client.call("job_start", op="ping", args={})["error"]["kind"] == "busy"
        client.call("close_all")
        assert eventually(lambda: client.call("job_start", op="ping", args={})["ok"])
        client.close()


def test_reset_frees_the_connections_jobs_and_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router's `reset` (registered by the router image; a stand-in here) also clears the
    connection's session, as close_all does."""
    monkeypatch.setitem(protocol.OPS, "reset", lambda args: (args.finish(), {})[1])
    with running_agent() as server:
        client = Client(server)
        client.call("socket", family="AF_INET", type="SOCK_DGRAM")
        job = client.call("job_start", op="ping", args={})["result"]["job"]
        assert client.call("reset")["ok"]
        assert client.call("job_wait", job=job)["error"]["kind"] == "bad_handle"
        assert client.call("close_all")["result"]["closed"] == 0
        client.close()
