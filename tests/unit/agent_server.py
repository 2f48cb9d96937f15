"""An in-process agent server on 127.0.0.1 for unit tests (no Docker)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from netbed_agent import protocol

TOKEN = "unit-test-token"
protocol.default_ops()


@contextmanager
def running_agent(token: str | None = TOKEN) -> Iterator[protocol.Server]:
    server = protocol.Server(("127.0.0.1", 0), token)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Client:
    """A raw line client: what any program speaking the protocol sees."""

    def __init__(self, server: protocol.Server, token: str | None = TOKEN, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(server.server_address[:2], timeout=timeout)
        self.file = self.sock.makefile("rwb")
        self.token = token
        self.ids = 0

    def send_line(self, line: bytes) -> None:
        self.file.write(line)
        self.file.flush()

    def reply(self) -> dict:
        line = self.file.readline()
        assert line, "the agent closed the connection"
        return json.loads(line)

    def call(self, op: str, /, **args: object) -> dict:
        self.ids += 1
        request: dict[str, object] = {"id": self.ids, "op": op, "args": args}
        if self.token is not None:
            request["token"] = self.token
        self.send_line(json.dumps(request).encode() + b"\n")
        reply = self.reply()
        assert reply["id"] == self.ids
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll `check` until true or `timeout_s` passes (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()
