"""Which packets an impairment applies to: `--match PROTO[:PORT]`.

`parse_match` turns the user's text into the dict both backends take;
`normalize_match` validates that dict (it also arrives over the wire).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROTOCOLS: dict[str, int] = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
#: IP protocols whose header starts with 16-bit source and destination ports.
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})


def proto_number(proto: str | int) -> int:
    return PROTOCOLS[proto] if isinstance(proto, str) else proto


def parse_match(text: str | None) -> dict[str, Any] | None:
    """'PROTO[:PORT]' -> {"proto": name, "port": int|None}; None for everything."""
    if text is None or text == "":
        return None
    proto, _, port_text = text.partition(":")
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise ValueError(f"match: unknown protocol {proto!r}; expected one of {', '.join(PROTOCOLS)}")
    port = None
    if port_text:
        if proto not in ("tcp", "udp"):
            raise ValueError(f"match: {proto} has no ports (only tcp and udp do), got {text!r}")
        if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            raise ValueError(f"match: port must be 1-65535, got {port_text!r}")
        port = int(port_text)
    return {"proto": proto, "port": port}


def normalize_match(match: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Validate ``{"proto": "tcp"|"udp"|"icmp"|"icmpv6"|0..255, "port": 1..65535|None}``."""
    if match is None:
        return None
    if not isinstance(match, Mapping):
        raise ValueError("match: must be an object or null")
    for key in match:
        if key not in ("proto", "port"):
            raise ValueError(f"match.{key}: unknown key")
    proto = match.get("proto")
    port = match.get("port")
    if isinstance(proto, bool) or not (
        proto in PROTOCOLS or (isinstance(proto, int) and 0 <= proto <= 255)
    ):
        raise ValueError(f"match.proto: must be tcp, udp, icmp, icmpv6 or 0..255, got {proto!r}")
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
            raise ValueError(f"match.port: must be 1..65535 or null, got {port!r}")
        if proto_number(proto) not in PORT_PROTOCOLS:
            raise ValueError(f"match.port: only with a protocol that has ports, not {proto!r}")
    return {"proto": proto, "port": port}
