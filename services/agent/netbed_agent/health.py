"""Container health check: the agent answers a ping on its control address."""

from __future__ import annotations

import json
import os
import socket
import sys

ADDRESS_FILE = "/run/netbed-agent.address"  # written by __main__ once listening


def main() -> int:
    try:
        with open(ADDRESS_FILE, encoding="ascii") as fh:
            host, port_text = fh.read().split()
        request = {"id": 0, "op": "ping", "token": os.environ.get("NETBED_AGENT_TOKEN", "")}
        with socket.create_connection((host, int(port_text)), timeout=2) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = json.loads(sock.makefile("rb").readline())
    except (OSError, ValueError) as exc:
        print(f"agent not answering: {exc}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"agent refused the health check: {reply.get('error')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
