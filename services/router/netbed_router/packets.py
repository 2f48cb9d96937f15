"""What the engine needs to know and change inside an IP packet: header length,
the IPv4 header checksum, and the ECN field."""

from __future__ import annotations


def ip_header_len(data: bytes | bytearray | memoryview) -> int:
    """Length in bytes of the IP header (IPv4 IHL, or IPv6's fixed 40)."""
    if not data:
        return 0
    if data[0] >> 4 == 4:
        return (data[0] & 0x0F) * 4
    return 40


def _ipv4_checksum(hdr: bytearray) -> int:
    s = 0
    for i in range(0, len(hdr), 2):
        s += (hdr[i] << 8) | hdr[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ecn_set_ce(data: bytes | bytearray | memoryview) -> bytearray | None:
    """A copy of the IP packet with ECN set to CE, or None if it is not ECN-capable.

    Like the kernel's INET_ECN_set_ce: Not-ECT cannot be marked; ECT(0)/ECT(1) become CE;
    CE stays CE.  Fixes the IPv4 header checksum.
    """
    if len(data) < 20:
        return None
    version = data[0] >> 4
    if version == 4:
        if data[1] & 0x03 == 0:
            return None
        buf = bytearray(data)
        buf[1] |= 0x03
        ihl = (buf[0] & 0x0F) * 4
        buf[10] = buf[11] = 0
        csum = _ipv4_checksum(buf[:ihl])
        buf[10] = csum >> 8
        buf[11] = csum & 0xFF
        return buf
    if version == 6 and len(data) >= 40:
        if (data[1] >> 4) & 0x03 == 0:
            return None
        buf = bytearray(data)
        buf[1] |= 0x30
        return buf
    return None
