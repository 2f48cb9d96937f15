"""Operations the router agent adds to the common host agent."""

from __future__ import annotations

from typing import Any

from netbed_agent.args import Args
from netbed_agent.system import read_snmp, run_ip


def setup() -> None:
    """Called once at agent start, after routes are configured."""


def op_router_counters(args: Args) -> dict[str, Any]:
    """Forwarded datagrams (IPv4, IPv6) and per-interface state and counters."""
    args.finish()
    snmp = read_snmp()
    interfaces = {}
    for link in run_ip("-s", "link", "show"):
        stats = link.get("stats64", {})
        interfaces[link["ifname"]] = {
            "state": link.get("operstate"),
            "mtu": link.get("mtu"),
            "rx_packets": stats.get("rx", {}).get("packets"),
            "tx_packets": stats.get("tx", {}).get("packets"),
            "rx_bytes": stats.get("rx", {}).get("bytes"),
            "tx_bytes": stats.get("tx", {}).get("bytes"),
        }
    return {
        "ipv4_forwarded": snmp.get("Ip", {}).get("ForwDatagrams", 0),
        "ipv6_forwarded": snmp.get("Ip6", {}).get("OutForwDatagrams", 0),
        "interfaces": interfaces,
    }


def op_reset(args: Args) -> dict[str, Any]:
    """Return to pristine forwarding: no impairment on either direction."""
    args.finish()
    return {}


OPS = {"router_counters": op_router_counters, "reset": op_reset}
