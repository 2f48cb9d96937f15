"""The stdlib pcap reader and pcapng writer/reader (netbed_core.pcapng) and the packet key."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess

import pytest
from test_engine_decisions import ipv4_udp

from netbed_core.packet_key import ethernet_ip_key, ip_key
from netbed_core.pcapng import PcapError, PcapngWriter, merge_pcaps, read_pcap, read_pcapng

ETH = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"


def pcap(packets: list[tuple[int, bytes]], nano: bool = True, order: str = "<") -> io.BytesIO:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = io.BytesIO()
    out.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1))
    for ts, data in packets:
        sec, frac = divmod(ts, 1_000_000_000)
        out.write(struct.pack(order + "IIII", sec, frac if nano else frac // 1000, len(data), len(data)) + data)
    out.seek(0)
    return out


def test_written_packets_read_back_with_names_and_ns_times() -> None:
    f = io.BytesIO()
    w = PcapngWriter(f)
    a, b = w.add_interface("eth1 (client side)"), w.add_interface("eth2 (server side)")
    w.write_packet(a, 1_700_000_000_123_456_789, b"abc", 60)
    w.write_packet(b, 1_700_000_000_123_456_790, b"defgh")
    f.seek(0)
    got = list(read_pcapng(f))
    assert [(p.interface, p.ts_ns, p.data, p.orig_len) for p in got] == [
        ("eth1 (client side)", 1_700_000_000_123_456_789, b"abc", 60),
        ("eth2 (server side)", 1_700_000_000_123_456_790, b"defgh", 5),
    ]


def test_merge_orders_two_interfaces_by_time_and_reads_microsecond_pcaps() -> None:
    client = [pcap([(10_000, b"c1"), (30_000, b"c2")], nano=False), pcap([(50_000, b"c3")], order=">")]
    server = [pcap([(20_000, b"s1"), (40_000, b"s2")])]
    out = io.BytesIO()
    assert merge_pcaps(out, [("eth1", client), ("eth2", server)])["packets"] == 5
    out.seek(0)
    assert [(p.interface, p.data) for p in read_pcapng(out)] == [
        ("eth1", b"c1"), ("eth2", b"s1"), ("eth1", b"c2"), ("eth2", b"s2"), ("eth1", b"c3")]


def test_an_interface_that_captured_nothing_is_still_named() -> None:
    out = io.BytesIO()
    merge_pcaps(out, [("eth1", [pcap([(1, b"x")])]), ("eth2", [io.BytesIO()])])
    out.seek(0)
    assert [p.interface for p in read_pcapng(out)] == ["eth1"]
    assert b"eth2" in out.getvalue()


def test_a_pcap_cut_short_keeps_its_complete_records() -> None:
    data = pcap([(1, b"one"), (2, b"two")]).getvalue()
    assert [p.data for p in read_pcap(io.BytesIO(data[:-1]))] == [b"one"]


@pytest.mark.parametrize("blob, message", [
    (b"\x00" * 24, "bad magic"),
    (b"\xd4\xc3\xb2", "header is 3 bytes"),
])
def test_bad_pcap_is_named(blob: bytes, message: str) -> None:
    with pytest.raises(PcapError, match=message):
        list(read_pcap(io.BytesIO(blob)))


@pytest.mark.parametrize("blob, message", [
    (struct.pack("<II", 6, 32) + b"\0" * 24, "not a section header"),
    (struct.pack("<III", 0x0A0D0D0A, 28, 0x1A2B3C4D) + b"\0" * 4, "truncated"),
    (struct.pack("<III", 0x0A0D0D0A, 7, 0x1A2B3C4D), "bad block length 7"),
])
def test_bad_pcapng_is_named(blob: bytes, message: str) -> None:
    with pytest.raises(PcapError, match=message):
        list(read_pcapng(io.BytesIO(blob)))


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed on this machine")
def test_tcpdump_reads_what_the_writer_wrote(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.pcapng"
    with path.open("wb") as f:
        w = PcapngWriter(f)
        w.write_packet(w.add_interface("eth9"), 1_000_000_000, ETH + ipv4_udp(10, seq=7))
    out = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True, timeout=30)
    assert "10.0.0.2.1234 > 10.0.1.2.5678: UDP, length 10" in out.stdout, out.stderr


def test_packet_keys_tell_packets_apart_and_read_through_ethernet() -> None:
    a, b = ipv4_udp(50, seq=1), ipv4_udp(50, seq=2)
    assert ip_key(a) != ip_key(b)
    assert ip_key(a) == ethernet_ip_key(ETH + a)
    assert ip_key(a).startswith("4/1/")  # type: ignore[union-attr]
    assert ethernet_ip_key(b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28) is None  # ARP
    v6 = bytes([0x60, 0x0A, 0xBC, 0xDE]) + bytes(36) + b"payload"
    assert ip_key(v6).startswith(f"6/{0xABCDE}/")  # type: ignore[union-attr]


def test_the_key_ignores_the_transport_checksum_the_router_completes() -> None:
    """With checksum offload the client-side capture shows a partial UDP checksum and the
    server side the completed one: both are one packet."""
    partial = bytearray(ipv4_udp(50, seq=3))
    completed = bytearray(partial)
    completed[26:28] = b"\x12\x34"
    assert ip_key(partial) == ip_key(completed)
    completed[30] ^= 1  # a payload byte: another packet
    assert ip_key(partial) != ip_key(completed)
