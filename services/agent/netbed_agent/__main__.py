"""Start the agent: configure routes and the guard, then serve the control protocol."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import control, guard, netinit, protocol, system
from .limits import LISTEN_BACKLOG, MAX_CONNECTIONS, MAX_LINE_BYTES

#: Where the agent writes the address it listens on, for the health check.
#: Where the agent writes "ADDRESS PORT" once it listens (the health check reads it).
ADDRESS_FILE = os.environ.get("NETBED_AGENT_ADDRESS_FILE", "/run/netbed-agent.address")


def main() -> int:
    parser = argparse.ArgumentParser(prog="netbed_agent")
    parser.add_argument("--role", default=os.environ.get("NETBED_ROLE", "host"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("NETBED_CONTROL_PORT", "7000")))
    parser.add_argument("--bind", default=None,
                        help="listen on this address instead of the control network's (local testing)")
    parser.add_argument("--no-netinit", action="store_true",
                        help="leave routes and packet filters alone (local testing)")
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {opts.role} %(levelname)s %(message)s")
    log = logging.getLogger("netbed_agent")
    system.ROLE = opts.role
    token = os.environ.get("NETBED_AGENT_TOKEN") or None
    if token is None:
        log.error("NETBED_AGENT_TOKEN is not set: refusing to serve without a token")
        return 2
    data_nets = os.environ.get("NETBED_DATA_NETS", "")
    if opts.bind is None:
        ctl = control.discover(data_nets)
        bind = ctl.ipv4
        log.info("control interface %s (%s/%d): the only IPv4 address outside the data subnets %s",
                 ctl.ifname, ctl.ipv4, ctl.prefix_len, data_nets)
    else:
        ctl, bind = None, opts.bind
    if not opts.no_netinit:
        netinit.configure()
        if ctl is not None:
            guard.install(ctl.ifname, ctl.ipv4, opts.port, control.data_networks(data_nets))
    protocol.default_ops()
    if opts.role == "router":
        # The router image adds its own operations (counters, impairments).
        router = importlib.import_module("netbed_router.ops")
        router.setup()
        protocol.register(router.OPS)
    server = protocol.Server((bind, opts.port), token)
    with open(ADDRESS_FILE, "w", encoding="ascii") as fh:
        fh.write(f"{bind} {opts.port}\n")
    log.info("agent ready on %s port %d (%d ops; at most %d connections, backlog %d, lines up to %d bytes; "
             "requests need the token)", bind, opts.port, len(protocol.OPS), MAX_CONNECTIONS, LISTEN_BACKLOG,
             MAX_LINE_BYTES)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
