"""Which address the agent listens on: the control network's, and no other.

The data networks carry the traffic under test; the agent must not be
reachable from them (a client could otherwise drive the router's agent) and
must not hold a port in their address space.  The control network is the one
interface whose IPv4 address lies in none of the data subnets (NETBED_DATA_NETS,
set by compose.yaml); Docker forwards the published control port to that
address because the control network is the container's gateway network.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class ControlInterface:
    """The control network's interface in this container."""

    ifname: str
    ipv4: str
    prefix_len: int


def data_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """NETBED_DATA_NETS: whitespace-separated subnets of the data networks."""
    return [ipaddress.ip_network(item) for item in text.split()]


def find(addresses: list[dict[str, object]], data_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
         ) -> ControlInterface:
    """The one interface with an IPv4 address outside lo and every data subnet.

    `addresses` is `ip -j addr show`.  Raises RuntimeError naming what it saw
    if there is not exactly one: the agent must not guess where to listen.
    """
    if not data_nets:
        raise RuntimeError("NETBED_DATA_NETS is empty: cannot tell the control network from the data networks")
    found: list[ControlInterface] = []
    seen: list[str] = []
    for link in addresses:
        ifname = str(link.get("ifname"))
        for info in link.get("addr_info") or []:  # type: ignore[attr-defined]
            if info.get("family") != "inet":
                continue
            address = ipaddress.ip_address(info["local"])
            seen.append(f"{ifname} {address}")
            if address.is_loopback or any(address in net for net in data_nets):
                continue
            found.append(ControlInterface(ifname, str(address), int(info["prefixlen"])))
    if len(found) != 1:
        raise RuntimeError(
            f"expected exactly one IPv4 address outside the data subnets "
            f"({', '.join(map(str, data_nets))}), found {len(found)}; addresses: {', '.join(seen) or 'none'}")
    return found[0]


def discover(data_nets_text: str) -> ControlInterface:
    proc = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=10, check=True)
    return find(json.loads(proc.stdout or "[]"), data_networks(data_nets_text))
