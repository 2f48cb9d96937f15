"""A short key naming one IP packet, so the engine's decision log and a capture can be joined.

``ip_key(packet)`` is ``"4/<IP ID>/<hash>"`` for IPv4 and ``"6/<flow label>/<hash>"`` for
IPv6, where ``<hash>`` is the CRC-32 (8 hex digits) of the first ``HASHED_BYTES`` bytes of
the IP payload (for UDP and TCP: the transport header and the start of the data).  The IP
ID alone repeats (16 bits, and 0 for many DF packets) and the flow label is per flow, so the
hash tells packets apart; the key is computed from the packet as it *entered* the router,
which is what the client-side interface of a capture shows.
"""

from __future__ import annotations

import zlib

#: Bytes of the IP payload the hash covers.
HASHED_BYTES = 32
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD


def ip_key(packet: bytes | bytearray | memoryview) -> str | None:
    """The key of an IP packet (starting at its IP header), or None if it is not IPv4/IPv6
    or too short to hold its header."""
    if len(packet) < 1:
        return None
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            return None
        ihl = (packet[0] & 0x0F) * 4
        ident = (packet[4] << 8) | packet[5]
        payload = bytes(packet[ihl:ihl + HASHED_BYTES])
        return f"4/{ident}/{zlib.crc32(payload):08x}"
    if version == 6:
        if len(packet) < 40:
            return None
        label = ((packet[1] & 0x0F) << 16) | (packet[2] << 8) | packet[3]
        payload = bytes(packet[40:40 + HASHED_BYTES])
        return f"6/{label}/{zlib.crc32(payload):08x}"
    return None


def ethernet_ip_key(frame: bytes) -> str | None:
    """``ip_key`` of the IP packet in an Ethernet frame (one 802.1Q tag allowed), or None."""
    off = 12
    if len(frame) < off + 2:
        return None
    ethertype = (frame[off] << 8) | frame[off + 1]
    if ethertype == 0x8100:
        off += 4
        if len(frame) < off + 2:
            return None
        ethertype = (frame[off] << 8) | frame[off + 1]
    if ethertype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return None
    return ip_key(memoryview(frame)[off + 2:])
