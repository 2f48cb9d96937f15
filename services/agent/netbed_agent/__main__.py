"""Start the agent: configure routes, then serve the control protocol."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import netinit, protocol, system


def main() -> int:
    parser = argparse.ArgumentParser(prog="netbed_agent")
    parser.add_argument("--role", default=os.environ.get("NETBED_ROLE", "host"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("NETBED_CONTROL_PORT", "7000")))
    parser.add_argument("--no-netinit", action="store_true", help="leave routes alone (local testing)")
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {opts.role} %(levelname)s %(message)s")
    log = logging.getLogger("netbed_agent")
    system.ROLE = opts.role
    if not opts.no_netinit:
        netinit.configure()
    protocol.default_ops()
    if opts.role == "router":
        # The router image adds its own operations (counters, impairments).
        router = importlib.import_module("netbed_router.ops")
        router.setup()
        protocol.register(router.OPS)
    server = protocol.Server(("", opts.port), protocol.Handler)
    log.info("agent ready on port %d (%d ops)", opts.port, len(protocol.OPS))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
