"""`--match` as tc u32 filters: which packets the kernel backend steers into netem.

Ports are matched as source or destination; IPv4 without options and IPv6
without extension headers are assumed (the offsets are fixed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .match import proto_number

#: The prio band (minor number) that holds netem when a match is set.
NETEM_BAND = 3


@dataclass(frozen=True)
class U32Key:
    """One ``match`` of a u32 filter as ``tc -j filter show`` prints it (offset from the IP header)."""

    off: int
    value: int
    mask: int


def filter_specs(match: Mapping[str, Any]) -> list[tuple[str, list[str], list[U32Key]]]:
    """(tc protocol, u32 match tokens, expected keys) for each filter a match needs."""
    proto = match["proto"]
    number = proto_number(proto)
    port = match["port"]
    out: list[tuple[str, list[str], list[U32Key]]] = []
    for family, sel, proto_key, port_off in (
        ("ip", "ip", U32Key(8, number << 16, 0x00FF0000), 20),
        ("ipv6", "ip6", U32Key(4, number << 8, 0x0000FF00), 40),
    ):
        if (proto == "icmp" and family == "ipv6") or (proto == "icmpv6" and family == "ip"):
            continue  # ICMP is IPv4-only, ICMPv6 IPv6-only (like the userspace backend)
        base = ["match", sel, "protocol", str(number), "0xff"]
        if port is None:
            out.append((family, base, [proto_key]))
            continue
        # Source OR destination port: both halves of a flow match (two filters).
        out.append((family, [*base, "match", sel, "dport", str(port), "0xffff"],
                    [proto_key, U32Key(port_off, port, 0x0000FFFF)]))
        out.append((family, [*base, "match", sel, "sport", str(port), "0xffff"],
                    [proto_key, U32Key(port_off, port << 16, 0xFFFF0000)]))
    return out


def filter_commands(dev: str, root_major: int, match: Mapping[str, Any]) -> list[list[str]]:
    """The ``tc filter add`` commands steering ``match`` to the netem band of prio ``root_major:``."""
    cmds = []
    for pref, (family, tokens, _keys) in enumerate(filter_specs(match), start=1):
        cmds.append(["tc", "filter", "add", "dev", dev, "parent", f"{root_major:x}:", "protocol", family,
                     "prio", str(pref), "u32", *tokens, "flowid", f"{root_major:x}:{NETEM_BAND:x}"])
    return cmds
