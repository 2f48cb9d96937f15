"""What `tc qdisc replace ... netem ARGS` asks of the kernel, read off the wire.

tc parses netem's arguments in userspace and only then sends one RTM_NEWQDISC netlink
message, so on ANY Linux machine (with or without `sch_netem`) running tc under
`strace -e write=FD` shows whether tc accepted the arguments and, if it did, the exact values
it would hand the kernel. The differential test (tests/differential/) compares netbed's parser
and renderer with tc's this way.

All the lines of one corpus run through ONE `tc -force -batch` process inside a throwaway
network namespace (so nothing is ever set on a real interface, even where the kernel has
netem). A `qdisc show dev lo` line follows every argument line: its RTM_GETQDISC request is
the marker that splits strace's log into one segment per argument line. Standard library only.
"""

from __future__ import annotations

import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RTM_NEWQDISC = 36
RTM_GETQDISC = 38
TCA_KIND, TCA_OPTIONS = 1, 2
#: struct tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter (u32 each; times in
#: psched ticks of 64 ns, probabilities as fractions of 2^32 - 1).
QOPT = struct.Struct("<6I")
#: netem's nested attributes (linux/pkt_sched.h) and how each is read.
NETEM_ATTRS: dict[int, tuple[str, str]] = {
    1: ("corr", "<3I"),           # delay, loss, duplicate correlations
    2: ("delay_dist", "table"),   # the delay distribution table (s16 each)
    3: ("reorder", "<2I"),        # probability, correlation
    4: ("corrupt", "<2I"),        # probability, correlation
    5: ("loss", "nested"),        # NETEM_LOSS_GI / NETEM_LOSS_GE
    6: ("rate", "<IiIi"),         # rate (bytes/s), packet overhead, cell size, cell overhead
    7: ("ecn", "<I"),
    8: ("rate64", "<Q"),
    10: ("latency64", "<q"),      # ns
    11: ("jitter64", "<q"),       # ns
    12: ("slot", "<qqiiqq"),      # min, max (ns), max packets, max bytes, dist delay, dist jitter
    13: ("slot_dist", "table"),
    14: ("prng_seed", "<Q"),
}
LOSS_MODELS = {1: ("gi", "<5I"), 2: ("ge", "<4I")}


@dataclass
class TcVerdict:
    """What tc did with one argument line."""

    args: str
    accepted: bool
    #: tc's own words when it refused (its stderr lines for this argument line).
    error: str = ""
    #: The netem options it would send (decode_options), when it accepted.
    options: dict[str, Any] = field(default_factory=dict)


def _attrs(data: bytes) -> list[tuple[int, bytes]]:
    """netlink attributes (type without flag bits, payload) of an attribute stream."""
    out, pos = [], 0
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("<HH", data, pos)
        if length < 4:
            break
        out.append((kind & 0x3FFF, data[pos + 4:pos + length]))
        pos += (length + 3) & ~3
    return out


def decode_options(payload: bytes) -> dict[str, Any]:
    """netem's TCA_OPTIONS payload as {name: value}: the tc_netem_qopt fields, then attributes.

    Distribution tables are reduced to their length and a checksum of their bytes."""
    fields = dict(zip(("latency", "limit", "loss", "gap", "duplicate", "jitter"),
                      QOPT.unpack_from(payload), strict=True))
    options: dict[str, Any] = dict(fields)
    for kind, data in _attrs(payload[(QOPT.size + 3) & ~3:]):
        name, fmt = NETEM_ATTRS.get(kind, (f"attr{kind}", "raw"))
        if fmt == "table":
            options[name] = (len(data) // 2, sum(data) & 0xFFFFFFFF)
        elif fmt == "nested":
            options[name] = {LOSS_MODELS.get(k, (f"model{k}", ""))[0]:
                             struct.unpack(LOSS_MODELS[k][1], d) if k in LOSS_MODELS else d.hex()
                             for k, d in _attrs(data)}
        elif fmt == "raw":
            options[name] = data.hex()
        else:
            value = struct.unpack(fmt, data[:struct.calcsize(fmt)])
            options[name] = value[0] if len(value) == 1 else value
    return options


def decode_newqdisc(message: bytes) -> dict[str, Any]:
    """The netem options of one RTM_NEWQDISC message (nlmsghdr, tcmsg, attributes)."""
    body = message[16 + 20:]
    attrs = dict(_attrs(body))
    kind = attrs.get(TCA_KIND, b"").rstrip(b"\0").decode()
    if kind != "netem":
        raise ValueError(f"expected a netem qdisc, got {kind!r}")
    return decode_options(attrs.get(TCA_OPTIONS, b""))


_SYSCALL = re.compile(r"^(sendmsg|write)\((\d+), (.*)$")
#: One line of strace's hex dump: " | 00000  4c 00 ... 00  L...$..." (16 bytes, 49 columns of hex).
_HEX = re.compile(r"^ \| [0-9a-f]{5}  (.{49})")
_WRITE_TEXT = re.compile(r'^write\(2, "(.*)", \d+\)')


def _split_in_order(log: str) -> list[tuple[list[bytes], list[str]]]:
    """strace's log cut at every RTM_GETQDISC marker: (sent messages, stderr lines) per argument
    line, plus a last segment for what followed the last marker."""
    segments: list[tuple[list[bytes], list[str]]] = []
    messages: list[bytes] = []
    errors: list[str] = []
    current: bytearray | None = None

    def finish_message() -> None:
        nonlocal current, messages, errors
        if current is None:
            return
        data = bytes(current)
        current = None
        if len(data) >= 6 and struct.unpack_from("<H", data, 4)[0] == RTM_GETQDISC:
            segments.append((messages, errors))
            messages, errors = [], []
        else:
            messages.append(data)

    for line in log.splitlines():
        if line.startswith(" * "):  # " * 76 bytes in buffer 0": the dump follows
            continue
        hexed = _HEX.match(line)
        if hexed and current is not None:
            current.extend(bytes.fromhex("".join(re.findall(r"[0-9a-f]{2}", hexed.group(1)))))
            continue
        finish_message()
        if line.startswith("sendmsg("):
            current = bytearray()
        elif (text := _WRITE_TEXT.match(line)) is not None:
            errors.append(text.group(1).encode().decode("unicode_escape").strip())
    finish_message()
    segments.append((messages, errors))
    return segments


def _verdict(line: str, messages: list[bytes], errors: list[str]) -> TcVerdict:
    new = [m for m in messages if len(m) >= 6 and struct.unpack_from("<H", m, 4)[0] == RTM_NEWQDISC]
    text = " ".join(e for e in errors if e and not e.startswith("Command failed"))
    if new:
        return TcVerdict(line, True, options=decode_newqdisc(new[-1]))
    return TcVerdict(line, False, error=text)


def _run_batch(arg_lines: list[str], netns: str) -> list[tuple[list[bytes], list[str]]]:
    with tempfile.TemporaryDirectory(prefix="netbed-tcdiff-") as tmp:
        batch = Path(tmp) / "batch"
        batch.write_text("".join(f"qdisc replace dev lo root netem {line}\nqdisc show dev lo\n"
                                 for line in arg_lines))
        trace = Path(tmp) / "trace"
        cmd = ["ip", "netns", "exec", netns, "strace", "-qq", "-o", str(trace), "-s", "4096",
               "-e", "trace=sendmsg,write", "-e", "write=3", "-e", "verbose=none", "-X", "raw",
               "tc", "-force", "-batch", str(batch)]
        # tc exits non-zero when any line failed; that is expected here.
        subprocess.run(cmd, capture_output=True, timeout=600, check=False)
        return _split_in_order(trace.read_text())


def run_tc_batch(arg_lines: list[str], *, netns: str) -> list[TcVerdict]:
    """Run every line through `tc qdisc replace dev lo root netem LINE` in `netns` (which must
    exist), in as few tc processes as possible, and return tc's verdict on each line, in order.

    A keyword missing its argument (`gap` at the end) makes tc exit at once, ending the batch:
    that line is a refusal, and the batch resumes after it."""
    for line in arg_lines:
        if any(c in line for c in "\"'#\\\n"):
            raise ValueError(f"corpus line {line!r}: quotes, '#', backslashes and newlines are not allowed")
    verdicts: list[TcVerdict] = []
    while len(verdicts) < len(arg_lines):
        rest = arg_lines[len(verdicts):]
        *done, tail = _run_batch(rest, netns)
        verdicts += [_verdict(line, *segment) for line, segment in zip(rest, done, strict=False)]
        if len(done) < len(rest):  # tc exited on this line
            verdicts.append(_verdict(rest[len(done)], *tail))
    return verdicts
