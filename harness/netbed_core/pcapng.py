"""Packet capture files, standard library only: classic pcap in, pcapng out and in.

The router captures each of its two data interfaces with its own tcpdump (classic pcap,
nanosecond timestamps) and merges them here into one pcapng whose Interface Description
Blocks carry the interface names (``if_name``), so a reader sees a packet enter on the
client side and (or not) leave on the server side.  The harness and the tests read the
result back with ``read_pcapng``; Wireshark and tcpdump (≥ 4.99) read it too.

Formats: classic pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html) and pcapng
(draft-ietf-opsawg-pcapng): Section Header, Interface Description and Enhanced Packet
Blocks; other block types are skipped when reading.  Timestamps are integers in
nanoseconds since the Unix epoch throughout.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

__all__ = [
    "Packet", "PcapError", "PcapngWriter", "merge_pcaps", "read_pcap", "read_pcapng",
]

#: Link type of Ethernet frames (LINKTYPE_ETHERNET).
LINKTYPE_ETHERNET = 1

_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_EPB = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_ENDOFOPT = 0
_OPT_IF_NAME = 2
_OPT_IF_TSRESOL = 9
#: Largest block the reader accepts, bytes: a corrupt length must not make it allocate GiBs.
MAX_BLOCK_BYTES = 16 * 1024 * 1024


class PcapError(ValueError):
    """A capture file is not what it claims to be (bad magic, truncated block, ...)."""


@dataclass(frozen=True)
class Packet:
    """One captured packet.  ``ts_ns``: capture time, ns since the Unix epoch; ``data``: the
    captured bytes (at most the snap length); ``orig_len``: the packet's length on the wire."""

    interface: str
    ts_ns: int
    data: bytes
    orig_len: int
    linktype: int = LINKTYPE_ETHERNET


# --------------------------------------------------------------------------------------
# classic pcap (what tcpdump -w writes)
# --------------------------------------------------------------------------------------
def read_pcap(f: IO[bytes], interface: str = "") -> Iterator[Packet]:
    """The packets of a classic pcap file (either byte order, µs or ns timestamps).

    A file cut short in its last record (tcpdump killed while writing) ends the iteration
    there: the complete records before it are returned, the partial one is not."""
    head = f.read(24)
    if len(head) == 0:
        return  # tcpdump had not written its header yet: no packets
    if len(head) < 24:
        raise PcapError(f"pcap: header is {len(head)} bytes, expected 24")
    for order in ("<", ">"):
        magic = struct.unpack(order + "I", head[:4])[0]
        if magic in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS):
            break
    else:
        raise PcapError(f"pcap: bad magic {head[:4].hex()}")
    scale = 1 if magic == _PCAP_MAGIC_NS else 1000
    linktype = struct.unpack(order + "I", head[20:24])[0] & 0x0FFFFFFF
    rec = struct.Struct(order + "IIII")
    while True:
        hdr = f.read(16)
        if len(hdr) < 16:
            return
        sec, frac, caplen, orig = rec.unpack(hdr)
        if caplen > MAX_BLOCK_BYTES:
            raise PcapError(f"pcap: record of {caplen} bytes (over {MAX_BLOCK_BYTES}): corrupt file")
        data = f.read(caplen)
        if len(data) < caplen:
            return
        yield Packet(interface, sec * 1_000_000_000 + frac * scale, data, orig, linktype)


# --------------------------------------------------------------------------------------
# pcapng writer
# --------------------------------------------------------------------------------------
def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * _pad4(len(value))


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


class PcapngWriter:
    """Writes one pcapng section (little endian) to a binary file.

    ``add_interface(name)`` returns the interface's id for ``write_packet``; each
    interface's timestamps are in nanoseconds (``if_tsresol`` = 9)."""

    def __init__(self, f: IO[bytes], *, application: str = "netbed") -> None:
        self.f = f
        self.interfaces: list[str] = []
        self.packets = 0
        shb_opts = _option(4, application.encode()) + _option(_OPT_ENDOFOPT, b"")  # shb_userappl
        body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + shb_opts
        f.write(_block(_SHB, body))

    def add_interface(self, name: str, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144) -> int:
        opts = _option(_OPT_IF_NAME, name.encode()) + _option(_OPT_IF_TSRESOL, bytes([9])) \
            + _option(_OPT_ENDOFOPT, b"")
        self.f.write(_block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + opts))
        self.interfaces.append(name)
        return len(self.interfaces) - 1

    def write_packet(self, interface_id: int, ts_ns: int, data: bytes, orig_len: int | None = None) -> None:
        if not 0 <= interface_id < len(self.interfaces):
            raise ValueError(f"pcapng: no interface {interface_id} (have {len(self.interfaces)})")
        body = struct.pack("<IIIII", interface_id, (ts_ns >> 32) & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF,
                           len(data), len(data) if orig_len is None else orig_len)
        self.f.write(_block(_EPB, body + data + b"\0" * _pad4(len(data))))
        self.packets += 1


def merge_pcaps(out: IO[bytes], sources: Iterable[tuple[str, Iterable[IO[bytes]]]], *,
                since_ns: int | None = None, until_ns: int | None = None) -> dict[str, Any]:
    """Merge classic pcap files into one pcapng on ``out``, in timestamp order, keeping the
    packets from ``since_ns`` to ``until_ns`` (None: no bound).

    ``sources``: per interface, its name and its pcap files (a tcpdump ring buffer: any
    order; each file is sorted in itself).  Streams: memory does not grow with the files.
    Returns ``packets`` (written), ``oldest_ns`` (the oldest packet in the files, kept or
    not; None if none) and ``wrapped`` (True if an interface has more than one file: its
    ring may have overwritten older packets)."""
    writer = PcapngWriter(out)
    streams: list[Iterator[tuple[int, int, Packet]]] = []
    oldest: int | None = None
    wrapped = False
    for name, files in sources:
        iface = -1
        nonempty = 0
        for f in files:
            it = read_pcap(f, name)
            first = next(it, None)
            if first is None:
                continue
            nonempty += 1
            oldest = first.ts_ns if oldest is None else min(oldest, first.ts_ns)
            if iface < 0:
                iface = writer.add_interface(name, first.linktype)
            streams.append(_keyed(iface, first, it))
        wrapped = wrapped or nonempty > 1
        if iface < 0:
            writer.add_interface(name)  # captured nothing: the interface is still named
    lo = since_ns if since_ns is not None else -1
    hi = until_ns if until_ns is not None else 1 << 64
    for ts, iface, pkt in heapq.merge(*streams, key=lambda t: t[0]):
        if lo <= ts <= hi:
            writer.write_packet(iface, pkt.ts_ns, pkt.data, pkt.orig_len)
    return {"packets": writer.packets, "oldest_ns": oldest, "wrapped": wrapped}


def _keyed(iface: int, first: Packet, rest: Iterator[Packet]) -> Iterator[tuple[int, int, Packet]]:
    yield first.ts_ns, iface, first
    for p in rest:
        yield p.ts_ns, iface, p


# --------------------------------------------------------------------------------------
# pcapng reader
# --------------------------------------------------------------------------------------
def read_pcapng(f: IO[bytes]) -> Iterator[Packet]:
    """The Enhanced Packet Blocks of a pcapng file, with their interface's name (``if_name``;
    ``"if<N>"`` when the file names none) and timestamps in ns (``if_tsresol`` honoured,
    default µs).  Several sections and either byte order are accepted."""
    order = "<"
    ifaces: list[tuple[str, int, int]] = []  # (name, linktype, ns per tick numerator/denominator)
    first = True
    while True:
        head = f.read(8)
        if not head:
            return
        if len(head) < 8:
            raise PcapError("pcapng: truncated block header")
        block_type = struct.unpack("<I", head[:4])[0]
        if block_type == _SHB:
            bom = f.read(4)
            if len(bom) < 4:
                raise PcapError("pcapng: truncated section header")
            order = "<" if struct.unpack("<I", bom)[0] == _BYTE_ORDER_MAGIC else ">"
            if struct.unpack(order + "I", bom)[0] != _BYTE_ORDER_MAGIC:
                raise PcapError(f"pcapng: bad byte-order magic {bom.hex()}")
            total = struct.unpack(order + "I", head[4:8])[0]
            _check_len(total)
            rest = f.read(total - 12)
            if len(rest) < total - 12:
                raise PcapError("pcapng: truncated section header")
            ifaces = []
            first = False
            continue
        if first:
            raise PcapError(f"pcapng: file starts with block type {block_type:#x}, not a section header")
        block_type, total = struct.unpack(order + "II", head)
        _check_len(total)
        body = f.read(total - 8)
        if len(body) < total - 8:
            raise PcapError("pcapng: truncated block")
        body = body[:-4]
        if block_type == _IDB:
            linktype = struct.unpack(order + "H", body[:2])[0]
            opts = _options(body[8:], order)
            name = opts.get(_OPT_IF_NAME, f"if{len(ifaces)}".encode()).decode(errors="replace")
            ifaces.append((name, linktype, _tsresol_ns(opts.get(_OPT_IF_TSRESOL))))
        elif block_type == _EPB:
            iface, hi, lo, caplen, orig = struct.unpack(order + "IIIII", body[:20])
            if iface >= len(ifaces):
                raise PcapError(f"pcapng: packet on undeclared interface {iface}")
            name, linktype, ns_per_tick = ifaces[iface]
            ticks = (hi << 32) | lo
            ts = ticks * ns_per_tick if ns_per_tick > 0 else ticks // -ns_per_tick
            yield Packet(name, ts, bytes(body[20:20 + caplen]), orig, linktype)


def _check_len(total: int) -> None:
    if total < 12 or total % 4 or total > MAX_BLOCK_BYTES:
        raise PcapError(f"pcapng: bad block length {total}")


def _options(raw: bytes, order: str) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(raw):
        code, length = struct.unpack(order + "HH", raw[off:off + 4])
        if code == _OPT_ENDOFOPT:
            break
        opts.setdefault(code, raw[off + 4:off + 4 + length])
        off += 4 + length + _pad4(length)
    return opts


def _tsresol_ns(value: bytes | None) -> int:
    """ns per tick (> 0), or -(ticks per ns) for resolutions finer than 1 ns."""
    if not value:
        return 1000  # pcapng default: microseconds
    v = value[0]
    if v & 0x80:
        raise PcapError(f"pcapng: binary timestamp resolution {v:#x} is not supported")
    return int(10 ** (9 - v)) if v <= 9 else -int(10 ** (v - 9))
