"""A short key naming one IP packet, so the engine's decision log and a capture can be joined.

``ip_key(packet)`` is ``"4/<IP ID>/<hash>"`` for IPv4 and ``"6/<flow label>/<hash>"`` for
IPv6, where ``<hash>`` is the CRC-32 (8 hex digits) of the first ``HASHED_BYTES`` bytes of
the IP payload (for UDP and TCP: the transport header and the start of the data).  The IP
ID alone repeats (16 bits, and 0 for many DF packets) and the flow label is per flow, so the
hash tells packets apart; the key is computed from the packet as it *entered* the router,
which is what the client-side interface of a capture shows.

The transport checksum (UDP, TCP, ICMP, ICMPv6) is left out of the hash: with checksum
offload the sender leaves it partial, and the router completes it on the way (NFQUEUE does),
so the same packet carries two values, one on each side of the router.
"""

from __future__ import annotations

import zlib

#: Bytes of the IP payload the hash covers.
HASHED_BYTES = 32
#: Where each transport header keeps its checksum (offset in the IP payload), by protocol.
CHECKSUM_OFFSET = {17: 6, 6: 16, 1: 2, 58: 2}
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
        return f"4/{ident}/{_payload_hash(packet[ihl:ihl + HASHED_BYTES], packet[9]):08x}"
    if version == 6:
        if len(packet) < 40:
            return None
        label = ((packet[1] & 0x0F) << 16) | (packet[2] << 8) | packet[3]
        return f"6/{label}/{_payload_hash(packet[40:40 + HASHED_BYTES], packet[6]):08x}"
    return None


def _payload_hash(payload: bytes | bytearray | memoryview, protocol: int) -> int:
    """CRC-32 of the payload's first bytes with the transport checksum zeroed."""
    head = bytearray(payload)
    off = CHECKSUM_OFFSET.get(protocol)
    if off is not None and len(head) >= off + 2:
        head[off:off + 2] = b"\0\0"
    return zlib.crc32(head)


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
