"""Which router interface faces which side, found by subnet, never by name.

Interface names change between runs (eth0/eth1 follow the order Docker attaches
networks), so both backends look up the interface holding an address in each
side's subnet.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Mapping
from typing import Any


class InterfaceError(LookupError):
    """No (or no unambiguous) interface holds an address in a side's subnet."""


def read_addresses() -> list[dict[str, Any]]:
    """``ip -j addr show`` as parsed JSON."""
    out = subprocess.run(["ip", "-j", "addr", "show"], check=True, capture_output=True, text=True).stdout
    addresses: list[dict[str, Any]] = json.loads(out or "[]")
    return addresses


def find_interfaces(nets: Mapping[str, str | None], addresses: list[dict[str, Any]]) -> dict[str, str]:
    """``{"client": IF, "server": IF}`` from ``ip -j addr show`` output: the interface holding an
    address in each side's subnets (``{"client4": ..., "client6": ..., "server4": ..., ...}``)."""
    found: dict[str, str] = {}
    for side in ("client", "server"):
        names: set[str] = set()
        for net_s in (nets.get(f"{side}4"), nets.get(f"{side}6")):
            if not net_s:
                continue
            net = ipaddress.ip_network(net_s, strict=False)
            for link in addresses:
                for a in link.get("addr_info", []):
                    try:
                        addr = ipaddress.ip_address(a.get("local", ""))
                    except ValueError:
                        continue
                    if addr.version == net.version and addr in net:
                        names.add(link["ifname"])
        wanted = ", ".join(n for n in (nets.get(f"{side}4"), nets.get(f"{side}6")) if n)
        if not names:
            raise InterfaceError(f"no interface has an address in the {side} subnet ({wanted})")
        if len(names) > 1:
            raise InterfaceError(f"several interfaces have addresses in the {side} subnet ({wanted}): "
                                     f"{', '.join(sorted(names))}")
        found[side] = names.pop()
    if found["client"] == found["server"]:
        raise InterfaceError(f"the client and server subnets are both on {found['client']}: "
                                 "the router needs one interface per side")
    return found
