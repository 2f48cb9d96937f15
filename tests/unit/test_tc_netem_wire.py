"""Decoding what tc sends for netem (netbed_testkit.tc_netem_wire), on messages and strace logs
captured from iproute2 6.1 (`tc qdisc add dev lo root netem delay 100ms 10ms 25% loss 1%`)."""

from __future__ import annotations

from netbed_testkit.tc_netem_wire import _split_in_order, _verdict, decode_newqdisc

# RTM_NEWQDISC for "delay 100ms 10ms 25% loss 1%", as strace's hex dump showed it.
MESSAGE = bytes.fromhex(
    "5c000000240005 06c987086b00000000"
    "000000000100000000000000ffffffff"
    "000000000a0001006e6574656d000000"
    "2c00020084d71700e8030000295c8f02"
    "00000000000000005a62020010000100"
    "0000004000000000 00000000".replace(" ", ""))

STRACE_LOG = """\
sendmsg(3, 0x7ffd202247b0, 0)           = 92
 * 92 bytes in buffer 0
 | 00000  5c 00 00 00 24 00 05 06  c9 87 08 6b 00 00 00 00  \\...$......k.... |
 | 00010  00 00 00 00 01 00 00 00  00 00 00 00 ff ff ff ff  ................ |
 | 00020  00 00 00 00 0a 00 01 00  6e 65 74 65 6d 00 00 00  ........netem... |
 | 00030  2c 00 02 00 84 d7 17 00  e8 03 00 00 29 5c 8f 02  ,...........)\\.. |
 | 00040  00 00 00 00 00 00 00 00  5a 62 02 00 10 00 01 00  ........Zb...... |
 | 00050  00 00 00 40 00 00 00 00  00 00 00 00              ...@........     |
write(2, "Error: Specified qdisc kind is unknown", 38) = 38
write(2, "Command failed b:1\\n", 19)    = 19
sendmsg(3, 0x7ffd20234750, 0)           = 36
 * 36 bytes in buffer 0
 | 00000  24 00 00 00 26 00 01 03  f6 87 08 6b 00 00 00 00  $...&......k.... |
 | 00010  00 00 00 00 01 00 00 00  00 00 00 00 00 00 00 00  ................ |
 | 00020  00 00 00 00                                       ....             |
write(2, "Illegal \\"gap\\"\\n", 14)       = 14
write(2, "Command failed b:3\\n", 19)    = 19
sendmsg(3, 0x7ffd20234750, 0)           = 36
 * 36 bytes in buffer 0
 | 00000  24 00 00 00 26 00 01 03  f7 87 08 6b 00 00 00 00  $...&......k.... |
 | 00010  00 00 00 00 01 00 00 00  00 00 00 00 00 00 00 00  ................ |
 | 00020  00 00 00 00                                       ....             |
"""


def test_decodes_the_netem_options() -> None:
    options = decode_newqdisc(MESSAGE)
    # 100 ms and 10 ms in psched ticks of 64 ns; 1% and 25% as fractions of 2^32 - 1.
    assert options == {"latency": 1562500, "limit": 1000, "loss": 42949673, "gap": 0, "duplicate": 0,
                       "jitter": 156250, "corr": (1073741824, 0, 0)}


def test_a_strace_log_splits_at_each_marker() -> None:
    segments = _split_in_order(STRACE_LOG)
    assert len(segments) == 3  # two argument lines, then what followed the last marker
    accepted = _verdict("delay 100ms 10ms 25% loss 1%", *segments[0])
    assert accepted.accepted and accepted.options["latency"] == 1562500
    refused = _verdict("gap 08", *segments[1])
    assert not refused.accepted and refused.error == 'Illegal "gap"'
    assert segments[2] == ([], [])
