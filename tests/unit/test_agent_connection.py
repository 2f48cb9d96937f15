"""AgentConnection recovery (issue #12, finding 9), against a real agent server on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest
from agent_server import TOKEN, running_agent

from netbed import agent as agent_mod
from netbed.agent import IDEMPOTENT_OPS, AgentConnection
from netbed.errors import AgentConnectionError, AgentError
from netbed_agent import protocol


@pytest.fixture
def server() -> Iterator[protocol.Server]:
    with running_agent() as srv:
        yield srv


def _conn(server: protocol.Server, **kw: object) -> AgentConnection:
    host, port = server.server_address[:2]
    return AgentConnection("router", host, port, TOKEN, **kw)  # type: ignore[arg-type]


def test_calls_carry_the_token(server: protocol.Server) -> None:
    with _conn(server) as conn:
        assert conn.call("ping")["pong"] is True
    host, port = server.server_address[:2]
    with AgentConnection("router", host, port, "wrong") as bad, pytest.raises(AgentError) as info:
        bad.call("ping")
    assert info.value.kind == "unauthorized"


def test_an_interrupted_call_does_not_put_replies_out_of_step(server: protocol.Server) -> None:
    """A KeyboardInterrupt while waiting for a reply used to leave that reply unread, and the
    next call failed with "reply id N != N+1"."""
    conn = _conn(server)
    fd = conn.call("socket", family="AF_INET", type="SOCK_DGRAM")["fd"]
    conn.call("bind", fd=fd, address=["127.0.0.1", 0])

    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            conn.call("recv", fd=fd, timeout=0.6)  # its reply (a timeout) arrives after the interrupt
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    time.sleep(0.6)  # let the stale reply arrive, so reusing the old connection would read it
    assert conn.call("ping")["pong"] is True
    # The discarded connection's sockets went with it (per-connection ownership).
    with pytest.raises(AgentError) as info:
        conn.call("getsockname", fd=fd)
    assert info.value.kind == "bad_handle"
    conn.close()


def test_a_reply_timeout_discards_the_connection(server: protocol.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """No reply within the op's timeout plus the margin: the connection is dropped (its reply
    may still come) and the next call runs on a new one, in step."""
    monkeypatch.setattr(agent_mod, "REPLY_MARGIN_S", -0.4)  # give up 0.4 s before the agent answers
    conn = _conn(server)
    fd = conn.call("socket", family="AF_INET", type="SOCK_DGRAM")["fd"]
    conn.call("bind", fd=fd, address=["127.0.0.1", 0])
    with pytest.raises(AgentConnectionError, match="no reply to recv"):
        conn.call("recv", fd=fd, timeout=0.6)
    monkeypatch.setattr(agent_mod, "REPLY_MARGIN_S", 30.0)
    assert conn.call("ping")["pong"] is True
    conn.close()


def test_reconnects_after_the_agent_restarts_on_another_port() -> None:
    """The resolver is asked where the agent is now; idle calls of any op recover."""
    with running_agent() as first:
        host, port = first.server_address[:2]
        where = {"endpoint": (host, port, TOKEN)}
        conn = AgentConnection("router", host, port, TOKEN, resolve=lambda: where["endpoint"])
        assert conn.call("ping")["pong"]
    with running_agent() as second:
        where["endpoint"] = (*second.server_address[:2], TOKEN)
        assert conn.call("ping")["pong"], "a call after a restart must reconnect"
        assert conn.call("socket", family="AF_INET", type="SOCK_DGRAM")["fd"] == 1
        conn.close()


class DropFirstRequest(socketserver.StreamRequestHandler):
    """A fake agent: the first connection dies after reading one request; later ones answer."""

    requests: list[str] = []
    connections = 0

    def handle(self) -> None:
        cls = DropFirstRequest
        cls.connections += 1
        first = cls.connections == 1
        while line := self.rfile.readline():
            request = json.loads(line)
            cls.requests.append(request["op"])
            if first:
                return
            self.wfile.write(json.dumps({"id": request["id"], "ok": True, "result": {"pong": True}}).encode() + b"\n")


@pytest.mark.parametrize(("op", "sent"), [("ping", ["ping", "ping"]), ("socket", ["socket"])])
def test_idempotent_ops_are_retried_once_others_are_not(op: str, sent: list[str]) -> None:
    """The connection breaks with the request in flight: ping is sent again on a new
    connection; socket is not (it may have run), and the error says so."""
    assert "ping" in IDEMPOTENT_OPS and "socket" not in IDEMPOTENT_OPS and "job_wait" not in IDEMPOTENT_OPS
    DropFirstRequest.requests, DropFirstRequest.connections = [], 0
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), DropFirstRequest) as fake:
        threading.Thread(target=fake.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        conn = AgentConnection("router", *fake.server_address[:2], TOKEN)
        if op in IDEMPOTENT_OPS:
            assert conn.call(op)["pong"] is True
        else:
            with pytest.raises(AgentConnectionError, match="may or may not have run"):
                conn.call(op)
            assert conn.call("ping")["pong"], "the next call gets a new connection"
        assert DropFirstRequest.requests[: len(sent)] == sent
        conn.close()
        fake.shutdown()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_calls_to_an_exited_agent_fail_fast_naming_the_host() -> None:
    """The agent process is gone (its container exited): the next call fails in under 2 s with
    an error naming the host, instead of waiting for a reply timeout."""
    port = _free_port()
    env = {**os.environ, "NETBED_AGENT_TOKEN": TOKEN, "NETBED_ROLE": "router"}
    agent = subprocess.Popen([sys.executable, "-m", "netbed_agent", "--bind", "127.0.0.1", "--port", str(port),
                              "--no-netinit"], env=env, stderr=subprocess.PIPE)
    try:
        conn = None
        deadline = time.monotonic() + 10
        while conn is None:
            try:
                conn = AgentConnection("router", "127.0.0.1", port, TOKEN)
            except AgentConnectionError:
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise
                time.sleep(0.05)
        assert conn.call("ping")["role"] == "router"
    finally:
        agent.kill()
        agent.wait(5)
    start = time.monotonic()
    with pytest.raises(AgentConnectionError, match="router agent"):
        conn.call("ping")
    assert time.monotonic() - start < 2.0
    conn.close()
