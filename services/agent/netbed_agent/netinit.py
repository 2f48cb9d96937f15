"""Network set-up at container start: no way out, and a route via the router.

Docker gives every container a default route via the bridge gateway.  We
delete it (IPv4 and IPv6), so any destination outside the testbed is
unreachable by route lookup and nothing can leave by mistake.  Client and
server then route the other side's subnets via the router, so every data
packet between them crosses it.

NETBED_ROUTES holds whitespace-separated PREFIX=GATEWAY pairs.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import subprocess

log = logging.getLogger("netbed_agent")


def parse_routes(text: str) -> list[tuple[str, str]]:
    routes = []
    for item in text.split():
        prefix, sep, gateway = item.partition("=")
        if not sep:
            raise ValueError(f"NETBED_ROUTES entry {item!r} is not PREFIX=GATEWAY")
        ipaddress.ip_network(prefix)
        ipaddress.ip_address(gateway)
        routes.append((prefix, gateway))
    return routes


def _ip(*argv: str, check: bool = True) -> None:
    proc = subprocess.run(["ip", *argv], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {proc.stderr.strip()}")


def configure() -> None:
    for family in ("-4", "-6"):
        # Repeat until none is left: there may be several (one per network).
        for _ in range(8):
            proc = subprocess.run(["ip", family, "route", "del", "default"], capture_output=True)
            if proc.returncode != 0:
                break
    for prefix, gateway in parse_routes(os.environ.get("NETBED_ROUTES", "")):
        family = "-6" if ":" in prefix else "-4"
        _ip(family, "route", "replace", prefix, "via", gateway)
        log.info("route %s via %s", prefix, gateway)
