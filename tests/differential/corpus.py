"""The argument lines the differential test gives both netbed and tc (about a thousand).

Four sources, all generated here so the corpus is reproducible:
* the examples of the tc-netem(8) manual page, in the manual's own words;
* cases like the kernel's tc-testing (tdc) netem suite: one per keyword and form;
* systematic boundary values for every kind of argument (times, percentages, integers, rates,
  sizes, distribution names) in every keyword's places;
* random mutations of the lines above (dropped, repeated and swapped tokens, numbers replaced
  by boundary values, leading zeros, abbreviations, unit case), from a fixed seed.
"""

from __future__ import annotations

import random

MANUAL = [
    "delay 100ms",
    "delay 100ms 10ms",
    "delay 100ms 10ms 25%",
    "delay 100ms 20ms distribution normal",
    "loss 0.1%",
    "loss 0.3% 25%",
    "duplicate 1%",
    "corrupt 0.1%",
    "delay 10ms reorder 25% 50%",
    "gap 5 delay 10ms",
    "delay 10ms reorder 25% 50% gap 5",
    "rate 256kbit",
    "delay 100ms rate 256kbit 20 100 14",
    "slot 800us 1ms packets 42",
    "slot distribution pareto 10ms 2ms",
    "loss state 1% 10% 70% 0.1% 1%",
    "loss gemodel 1% 10% 70% 0.1%",
    "loss 1% ecn",
    "limit 100 delay 1s",
    "delay 1s 500ms",
    "delay 100ms 10ms distribution pareto",
    "delay 100ms 10ms distribution paretonormal",
    "delay 10ms 1ms distribution uniform",
    "rate 1mbit 20 100 14 delay 10ms",
    "duplicate 1% 10%",
    "corrupt 0.1% 25%",
]

TDC_LIKE = [
    "limit 1", "limit 4294967295", "delay 100ms", "delay 100ms 10ms", "delay 100ms 10ms 25%",
    "loss 1%", "loss random 1% 2%", "loss state 1%", "loss state 1% 10%", "loss state 1% 10% 20%",
    "loss state 1% 10% 20% 5%", "loss gemodel 1%", "loss gemodel 1% 10%", "loss gemodel 1% 10% 70%",
    "ecn loss 1%", "corrupt 1%", "corrupt 1% 5%", "duplicate 5%", "duplicate 5% 10%",
    "reorder 10% delay 10ms", "delay 10ms reorder 10% 20% gap 3", "rate 1mbit", "rate 1mbit 10",
    "rate 1mbit 10 64", "rate 1mbit 10 64 -5", "slot 1ms", "slot 1ms 2ms", "slot 1ms 2ms packets 10",
    "slot 1ms 2ms bytes 3000", "slot 1ms 2ms packets 10 bytes 3000", "slot distribution normal 1ms 1ms",
    "slot distribution paretonormal 10ms 1ms packets 5 bytes 1000", "delay 1ms distribution normal",
    "delay 1ms 1ms distribution normal", "seed 7", "delay 10ms seed 7", "partition",
]

TIMES = ["0", "0us", "1us", "0.5us", "1.5us", "999ns", "1ns", "0.9ns", "1", "10", "010", "0x10", "1.", ".5ms",
         "100ms", "100msec", "100MS", "1s", "1sec", "1secs", "2.5s", "1e3us", "1e-3s", "5e2", "-1ms", "ms",
         "274877906us", "274877907us", "274877.906944ms", "2147483us", "2147484us", "1000000s", "1h", "1min",
         "1usec", "1usecs", "1nsec", "1ns", "100ns", "1.0000001ms", "99999999999999999999999ms"]
PCTS = ["0", "0%", "1", "1%", "100%", "100", "100.0001%", "-1%", "0.0000000233%", "0.0000000116%",
        "0.0000000117%", "0.00000001%", "1e-9%", "50.5%", "5e1%", "010%", "1%%", "%", "25.123456789%",
        "99.99999999999%", "0.1", "1e2%", "abc"]
INTS = ["0", "1", "5", "08", "010", "0x10", "4294967295", "4294967296", "-1", "1k", "1.5", "", "2147483647",
        "2147483648", "1e3"]
RATES = ["8bit", "7bit", "1kbit", "1Kbit", "1Mbit", "1mbit", "1Mbps", "1mbps", "1Gibit", "1gibit", "100",
         "1.5kbit", "10%", "0bit", "1bps", "1kibps", "18446744073709551615bit", "18446744073709551616bit",
         "1tbit", "1Tibit", "34359738360bit", "34359738368bit", "1e9bit", "1xbit", "bit"]
DISTS = ["uniform", "normal", "pareto", "paretonormal", "experimental", "foo", "NORMAL", "norm"]
SIZES = ["1500", "1k", "1kb", "1Kb", "64K", "1m", "0", "2147483647", "2147483648", "1.5k"]

TEMPLATES = [
    "delay {T}", "delay 10ms {T}", "delay 10ms 5ms {P}", "delay {T} {T}", "delay 10ms 5ms distribution {D}",
    "delay 10ms {T} distribution normal", "loss {P}", "loss random {P}", "loss random {P} {P}", "loss 1% {P}",
    "loss state {P}", "loss state 1% {P} 20% 5% {P}", "loss gemodel {P} {P}", "loss gemodel 1% 10% {P} {P}",
    "duplicate {P}", "duplicate 1% {P}", "corrupt {P}", "corrupt 1% {P}", "delay 10ms reorder {P}",
    "delay 10ms reorder {P} {P}", "delay 10ms reorder 10% gap {I}", "delay {T} reorder 10%", "gap {I}",
    "rate {R}", "rate 1mbit {I}", "rate 1mbit 10 {I}", "rate 1mbit 10 64 {I}", "slot {T}", "slot 1ms {T}",
    "slot 1ms 2ms packets {I}", "slot 1ms 2ms bytes {Z}", "slot distribution {D} 10ms 1ms",
    "slot distribution normal {T} {T}", "limit {I}", "limit {Z}", "loss {P} ecn", "ecn", "seed {I}",
    "delay 10ms reorder 10% gap {I} duplicate {P}", "duplicate {P} delay {T}", "loss {P} duplicate 1% {P}",
]
SLOTS = {"T": TIMES, "P": PCTS, "I": INTS, "R": RATES, "D": DISTS, "Z": SIZES}
KEYWORDS = ["limit", "delay", "distribution", "loss", "random", "state", "gemodel", "corrupt", "duplicate",
            "reorder", "gap", "rate", "slot", "packets", "bytes", "ecn", "seed", "partition"]


def systematic() -> list[str]:
    """Every template with each value of its first slot (other slots from a plain value)."""
    plain = {"T": "1ms", "P": "5%", "I": "3", "R": "1mbit", "D": "normal", "Z": "1500"}
    out = []
    for template in TEMPLATES:
        slots = [part[0] for part in template.split("{")[1:]]
        for position, kind in enumerate(slots):
            for value in SLOTS[kind]:
                values = [value if i == position else plain[k] for i, k in enumerate(slots)]
                line = template
                for kind_, v in zip(slots, values, strict=True):
                    line = line.replace("{" + kind_ + "}", v, 1)
                out.append(" ".join(line.split()))
    return out


def _mutate(rng: random.Random, line: str) -> str:
    tokens = line.split()
    op = rng.randrange(8)
    i = rng.randrange(len(tokens))
    if op == 0 and len(tokens) > 1:
        del tokens[i]
    elif op == 1:
        tokens.insert(i, tokens[i])
    elif op == 2 and len(tokens) > 1:
        j = rng.randrange(len(tokens))
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif op == 3:
        kind = rng.choice("TPIRZ")
        tokens[i] = rng.choice(SLOTS[kind])
    elif op == 4 and tokens[i][:1].isdigit():
        tokens[i] = "0" + tokens[i]
    elif op == 5 and tokens[i] in KEYWORDS and len(tokens[i]) > 2:
        tokens[i] = tokens[i][:rng.randrange(1, len(tokens[i]))]
    elif op == 6:
        tokens[i] = tokens[i].upper() if rng.random() < 0.5 else tokens[i].capitalize()
    else:
        tokens.insert(i, rng.choice(KEYWORDS))
    return " ".join(t for t in tokens if t)


def mutations(seed: int = 20261126, count: int = 400) -> list[str]:
    """`count` random mutations (one to three each) of the manual and tdc-like lines."""
    rng = random.Random(seed)
    base = MANUAL + TDC_LIKE
    out = []
    for _ in range(count):
        line = rng.choice(base)
        for _ in range(rng.randint(1, 3)):
            line = _mutate(rng, line)
        out.append(line or "delay")
    return out


def corpus() -> list[str]:
    """The whole corpus, duplicates removed, in a stable order."""
    seen: dict[str, None] = {}
    for line in MANUAL + TDC_LIKE + systematic() + mutations():
        seen.setdefault(line, None)
    return list(seen)
