"""Container health check: the agent answers a ping on its control port."""

from __future__ import annotations

import json
import os
import socket
import sys


def main() -> int:
    port = int(os.environ.get("NETBED_CONTROL_PORT", "7000"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b'{"id":0,"op":"ping"}\n')
            reply = json.loads(sock.makefile("rb").readline())
    except (OSError, ValueError) as exc:
        print(f"agent not answering on port {port}: {exc}", file=sys.stderr)
        return 1
    return 0 if reply.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
