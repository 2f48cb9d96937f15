"""Parse netem arguments, written exactly as for ``tc qdisc ... netem``, into a :class:`Netem`.

The grammar and the way optional positional arguments are recognised follow iproute2's
``tc/q_netem.c``: an optional argument (jitter, correlation, ``P31``...) is only taken when the
next token starts with a digit (``NEXT_IS_NUMBER``); keywords may come in any order.
Differences from tc, all on the strict side: keywords must be spelled out (tc also takes
prefixes such as ``del``), a keyword may appear only once, ``gap 0`` is rejected, integers
are decimal, and ``rate`` as a percentage of the link speed is not supported.
netbed adds one keyword, ``partition`` (drop everything), which must stand alone.

Standard library only.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from decimal import Decimal

from .model import (
    DELAY_DISTRIBUTIONS,
    MAX_DELAY_MS,
    MAX_SLOT_MS,
    Corrupt,
    Delay,
    Duplicate,
    GemodelLoss,
    Loss,
    Netem,
    NetemError,
    RandomLoss,
    Rate,
    Reorder,
    Slot,
    StateLoss,
)
from .units import (
    UnitError,
    parse_int,
    parse_percent,
    parse_rate_bits,
    parse_size_bytes,
    parse_time_ms,
    starts_like_number,
    starts_like_signed_number,
)

__all__ = ["KEYWORDS", "SYNONYMS", "parse", "tokenize"]

KEYWORDS: tuple[str, ...] = (
    "limit", "delay", "distribution", "loss", "ecn", "corrupt", "duplicate", "reorder", "gap",
    "rate", "slot", "seed", "partition",
)
"""Top-level keywords, in canonical order. ``partition`` is netbed's own."""

SYNONYMS: dict[str, str] = {"latency": "delay", "drop": "loss"}
"""Old spellings tc still accepts."""

_ALL_WORDS: tuple[str, ...] = (*KEYWORDS, *SYNONYMS)
_KEYWORD_LIST = ", ".join(KEYWORDS)
_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1
_S32_MAX = 2**31 - 1
_PCT = "a percentage like 1%"


def tokenize(text: str | Sequence[str]) -> list[str]:
    """Split input into tokens and drop a leading ``tc qdisc ... netem`` command, if any.

    A string is split on whitespace; a sequence is taken as ready-made tokens. Accepted
    prefixes (so a command line copied from the man page works): an optional ``#``/``$``
    prompt and ``sudo``, then ``tc ... netem`` (everything up to and including ``netem``),
    or just ``netem``.
    """
    if isinstance(text, str):
        tokens = text.split()
    else:
        if any(not isinstance(t, str) for t in text):
            raise NetemError("netem: tokens must be strings", expected="a list of strings")
        tokens = [t.strip() for t in text if t.strip()]
    while tokens and tokens[0] in ("#", "$", "sudo"):
        tokens = tokens[1:]
    if tokens and (tokens[0] == "tc" or tokens[0].endswith("/tc")):
        if "netem" not in tokens:
            raise NetemError('netem: this tc command has no "netem": expected "tc qdisc ... netem ARGS"',
                             token=tokens[0], expected='"netem"')
        tokens = tokens[tokens.index("netem") + 1:]
    elif tokens and tokens[0] == "netem":
        tokens = tokens[1:]
    return tokens


def parse(text: str | Sequence[str]) -> Netem:
    """Parse netem arguments (a string or a list of tokens) into a validated :class:`Netem`.

    Empty input is valid and gives the pristine ``Netem()``. Raises :class:`NetemError`
    naming the offending token on any problem.
    """
    return _Parser(tokenize(text)).run()


def _suggest(word: str, choices: Sequence[str]) -> str | None:
    low = word.lower()
    if low in choices:
        return low
    prefixed = [c for c in choices if low and c.startswith(low)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(low, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


class _Parser:
    """One pass over the tokens; collects the pieces, then builds the model."""

    def __init__(self, tokens: list[str]) -> None:
        self.toks = tokens
        self.i = 0
        self.seen: dict[str, str] = {}  # canonical keyword -> token as written
        self.limit: int | None = None
        self.delay: tuple[float, float, float] | None = None
        self.distribution: str | None = None
        self.loss: Loss | None = None
        self.corrupt: Corrupt | None = None
        self.duplicate: Duplicate | None = None
        self.reorder: tuple[float, float] | None = None
        self.gap: int | None = None
        self.rate: Rate | None = None
        self.slot: Slot | None = None
        self.seed: int | None = None
        self.ecn = False
        self.partition = False

    # -- token access ------------------------------------------------------------------------

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def need(self, keyword: str, what: str, expected: str) -> str:
        """Take the required argument of ``keyword``; error if missing or if it is a keyword."""
        nxt = self.peek()
        if nxt is None or nxt in _ALL_WORDS:
            raise NetemError(f'netem: "{keyword}" needs {what}', token=keyword, expected=expected)
        return self.take()

    def next_is_number(self) -> bool:
        nxt = self.peek()
        return nxt is not None and starts_like_number(nxt)

    def next_is_signed_number(self) -> bool:
        nxt = self.peek()
        return nxt is not None and starts_like_signed_number(nxt)

    # -- value conversion with tc-like messages ----------------------------------------------

    @staticmethod
    def bad(what: str, tok: str, expected: str) -> NetemError:
        return NetemError(f'netem: bad {what} "{tok}": expected {expected}', token=tok, expected=expected)

    def time(self, what: str, tok: str, *, nanoseconds: bool = False) -> float:
        """A time in ms; ``nanoseconds`` is slot's ``get_time64`` (s64 ns), else ``get_time``."""
        try:
            ms = parse_time_ms(tok, nanoseconds=nanoseconds)
        except UnitError as e:
            raise self.bad(what, tok, str(e)) from None
        limit = MAX_SLOT_MS if nanoseconds else MAX_DELAY_MS
        if ms > limit:
            raise self.bad(what, tok, f"a time tc can represent (at most {limit}ms)")
        return ms

    def pct(self, what: str, tok: str) -> float:
        try:
            return parse_percent(tok)
        except UnitError as e:
            if str(e) == "range":
                raise NetemError(f'netem: percentage "{tok}" is outside 0-100%', token=tok,
                                 expected="a percentage between 0% and 100%") from None
            raise self.bad(what, tok, str(e)) from None

    def opt_pct(self, what: str) -> float | None:
        """An optional trailing percentage (correlation, P31, ...), taken only if it starts with a digit."""
        return self.pct(what, self.take()) if self.next_is_number() else None

    def integer(self, what: str, tok: str, lo: int, hi: int, *, signed: bool = False) -> int:
        try:
            value = parse_int(tok, signed=signed)
        except UnitError as e:
            raise self.bad(what, tok, str(e)) from None
        if not lo <= value <= hi:
            raise self.bad(what, tok, f"a number from {lo} to {hi}")
        return value

    # -- main loop ---------------------------------------------------------------------------

    def run(self) -> Netem:
        while (tok := self.peek()) is not None:
            self.take()
            keyword = SYNONYMS.get(tok, tok)
            if keyword not in KEYWORDS:
                self.unknown(tok)
            if keyword in self.seen:
                first = self.seen[keyword]
                again = f' (already given as "{first}")' if first != tok else ""
                raise NetemError(f'netem: "{tok}" is given twice{again}', token=tok,
                                 expected="each keyword at most once")
            self.seen[keyword] = tok
            getattr(self, f"kw_{keyword}")(tok)
        return self.build()

    def unknown(self, tok: str) -> None:
        expected = f"a keyword ({_KEYWORD_LIST})"
        if starts_like_signed_number(tok) or tok.startswith((".", "+")):
            raise NetemError(f'netem: unexpected "{tok}": expected {expected}', token=tok, expected=expected)
        hint = _suggest(tok, _ALL_WORDS)
        if hint is not None:
            raise NetemError(f'netem: unknown keyword "{tok}" (did you mean "{hint}"?)', token=tok,
                             expected=expected)
        raise NetemError(f'netem: unknown keyword "{tok}": expected {expected}', token=tok, expected=expected)

    # -- keywords ----------------------------------------------------------------------------

    def kw_limit(self, kw: str) -> None:
        tok = self.need(kw, "a number of packets", "a number of packets like 1000")
        self.limit = self.integer("limit", tok, 1, _U32_MAX)

    def kw_delay(self, kw: str) -> None:
        delay = self.time(kw, self.need(kw, "a time", "a time like 100ms"))
        jitter = 0.0
        corr = 0.0
        if self.next_is_number():
            jitter = self.time("jitter", self.take())
            c = self.opt_pct("delay correlation")
            corr = 0.0 if c is None else c
        self.delay = (delay, jitter, corr)

    def kw_distribution(self, kw: str) -> None:
        choices = ", ".join(DELAY_DISTRIBUTIONS)
        tok = self.need(kw, f"a distribution ({choices})", f"one of {choices}")
        if tok not in DELAY_DISTRIBUTIONS:
            hint = _suggest(tok, DELAY_DISTRIBUTIONS)
            more = f' (did you mean "{hint}"?)' if hint else f": expected one of {choices}"
            raise NetemError(f'netem: unknown distribution "{tok}"{more}', token=tok,
                             expected=f"one of {choices}")
        self.distribution = tok

    def kw_loss(self, kw: str) -> None:
        expected = "a percentage like 1%, or random, state or gemodel"
        tok = self.need(kw, "a percentage or a model (random, state, gemodel)", expected)
        if tok == "random":
            pct = self.pct("loss", self.need(f"{kw} random", "a percentage", _PCT))
            corr = self.opt_pct("loss correlation")
            self.loss = RandomLoss(pct, 0.0 if corr is None else corr)
        elif tok == "state":
            p13 = self.pct("loss state p13", self.need(f"{kw} state", "a percentage (p13)", _PCT))
            rest = self.optional_pcts(("p31", "p32", "p23", "p14"), "loss state")
            defaults = [float(Decimal(100) - Decimal(repr(p13))), 0.0, 100.0, 0.0]
            vals = rest + defaults[len(rest):]
            self.loss = StateLoss(p13, vals[0], vals[1], vals[2], vals[3])
        elif tok == "gemodel":
            p = self.pct("loss gemodel p", self.need(f"{kw} gemodel", "a percentage (p)", _PCT))
            rest = self.optional_pcts(("r", "1-h", "1-k"), "loss gemodel")
            defaults = [float(Decimal(100) - Decimal(repr(p))), 100.0, 0.0]
            vals = rest + defaults[len(rest):]
            self.loss = GemodelLoss(p, vals[0], vals[1], vals[2])
        else:
            if not (starts_like_signed_number(tok) or tok.startswith(".")):
                hint = _suggest(tok, ("random", "state", "gemodel"))
                if hint is not None:
                    raise NetemError(f'netem: unknown loss model "{tok}" (did you mean "{hint}"?)',
                                     token=tok, expected=expected)
                raise self.bad("loss", tok, expected)
            pct = self.pct("loss", tok)
            corr = self.opt_pct("loss correlation")
            self.loss = RandomLoss(pct, 0.0 if corr is None else corr)

    def optional_pcts(self, names: Sequence[str], what: str) -> list[float]:
        out: list[float] = []
        for name in names:
            if not self.next_is_number():
                break
            out.append(self.pct(f"{what} {name}", self.take()))
        return out

    def kw_ecn(self, kw: str) -> None:
        self.ecn = True

    def kw_partition(self, kw: str) -> None:
        self.partition = True

    def kw_corrupt(self, kw: str) -> None:
        pct = self.pct(kw, self.need(kw, "a percentage", _PCT))
        corr = self.opt_pct("corrupt correlation")
        self.corrupt = Corrupt(pct, 0.0 if corr is None else corr)

    def kw_duplicate(self, kw: str) -> None:
        pct = self.pct(kw, self.need(kw, "a percentage", _PCT))
        corr = self.opt_pct("duplicate correlation")
        self.duplicate = Duplicate(pct, 0.0 if corr is None else corr)

    def kw_reorder(self, kw: str) -> None:
        pct = self.pct(kw, self.need(kw, "a percentage", _PCT))
        corr = self.opt_pct("reorder correlation")
        self.reorder = (pct, 0.0 if corr is None else corr)

    def kw_gap(self, kw: str) -> None:
        tok = self.need(kw, "a distance in packets", "a number of packets, 1 or more")
        self.gap = self.integer("gap", tok, 1, _U32_MAX)

    def kw_rate(self, kw: str) -> None:
        tok = self.need(kw, "a rate", "a rate like 10mbit")
        if "%" in tok:
            raise NetemError(
                f'netem: rate "{tok}" as a percentage of the link speed is not supported: '
                "expected an absolute rate like 10mbit", token=tok, expected="a rate like 10mbit")
        try:
            bits = parse_rate_bits(tok)
        except UnitError as e:
            raise self.bad("rate", tok, str(e)) from None
        if bits < 8:
            raise self.bad("rate", tok, "at least 8bit (the kernel counts whole bytes per second)")
        if bits > _U64_MAX:
            raise self.bad("rate", tok, f"at most {_U64_MAX}bit (tc keeps a 64-bit rate)")
        overhead = cell = cell_overhead = 0
        if self.next_is_signed_number():
            overhead = self.integer("rate packet overhead", self.take(), -_S32_MAX - 1, _S32_MAX, signed=True)
        if self.next_is_number():
            cell = self.integer("rate cell size", self.take(), 0, _U32_MAX)
        if self.next_is_signed_number():
            cell_overhead = self.integer("rate cell overhead", self.take(), -_S32_MAX - 1, _S32_MAX,
                                         signed=True)
        self.rate = Rate(bits, overhead, cell, cell_overhead)

    def kw_slot(self, kw: str) -> None:
        if self.next_is_number():
            lo = self.time("slot min delay", self.take(), nanoseconds=True)
            hi = lo
            if self.next_is_number():
                tok = self.take()
                hi = self.time("slot max delay", tok, nanoseconds=True)
                if hi < lo:
                    raise self.bad("slot max delay", tok, "a time not below the min delay")
            dist: str | None = None
            dmean: float | None = None
            djit: float | None = None
        else:
            if self.peek() != "distribution":
                expected = 'a time like 10ms or "distribution"'
                tok = self.need(kw, 'a time or "distribution"', expected)
                raise self.bad("slot", tok, expected)
            self.take()
            dist = self.need("slot distribution", "a distribution name",
                             "normal, pareto, paretonormal or a table FILE")
            dmean = self.time("slot distribution delay",
                              self.need("slot distribution", "a delay and a jitter", "a time like 10ms"),
                              nanoseconds=True)
            jtok = self.need("slot distribution", "a jitter after the delay", "a time like 2ms")
            djit = self.time("slot distribution jitter", jtok, nanoseconds=True)
            if djit <= 0:
                raise self.bad("slot distribution jitter", jtok, "a jitter above zero")
            lo = hi = 0.0
            if dist == "uniform":
                # tc ships no uniform table; uniform spacing is exactly the min/max form.
                mean, jit = Decimal(repr(dmean)), Decimal(repr(djit))
                if jit > mean:
                    raise self.bad("slot distribution jitter", jtok,
                                   'a jitter not above the delay for "uniform" (or write "slot MIN MAX")')
                lo, hi = float(mean - jit), float(mean + jit)
                dist = dmean = djit = None
        packets: int | None = None
        size: int | None = None
        for _ in range(2):
            nxt = self.peek()
            if nxt == "packets" and packets is None:
                self.take()
                ptok = self.need("slot packets", "a number of packets", "a number of packets like 10")
                packets = self.integer("slot packets", ptok, 1, _S32_MAX)
            elif nxt == "bytes" and size is None:
                self.take()
                btok = self.need("slot bytes", "a number of bytes", "a size like 1500 or 64kb")
                try:
                    size = parse_size_bytes(btok)
                except UnitError as e:
                    raise self.bad("slot bytes", btok, str(e)) from None
                if not 1 <= size <= _S32_MAX:
                    raise self.bad("slot bytes", btok, f"a size from 1 to {_S32_MAX} bytes")
        self.slot = Slot(lo, hi, dist, dmean, djit, packets, size)

    def kw_seed(self, kw: str) -> None:
        tok = self.need(kw, "a number", "a whole number like 42")
        self.seed = self.integer("seed", tok, 0, _U64_MAX)

    # -- assembly ----------------------------------------------------------------------------

    def build(self) -> Netem:
        if self.partition and len(self.seen) > 1:
            other = next(tok for kw, tok in self.seen.items() if kw != "partition")
            raise NetemError(
                f'netem: "partition" cannot be combined with "{other}": a partition drops every '
                "packet, so nothing else applies", token=other, expected='"partition" on its own')
        if self.distribution is not None and self.delay is None:
            raise NetemError('netem: "distribution" needs a delay with jitter, like "delay 100ms 10ms '
                             'distribution normal"', token=self.seen["distribution"],
                             expected="a delay with jitter")
        if self.gap is not None and self.reorder is None:
            raise NetemError('netem: "gap" needs "reorder", like "delay 10ms reorder 25% gap 5"',
                             token=self.seen["gap"], expected='"reorder"')
        delay = None
        if self.delay is not None:
            delay = Delay(*self.delay, distribution=self.distribution)
        reorder = None
        if self.reorder is not None:
            reorder = Reorder(*self.reorder, gap=1 if self.gap is None else self.gap)
        return Netem(
            delay=delay,
            loss=self.loss,
            duplicate=self.duplicate,
            corrupt=self.corrupt,
            reorder=reorder,
            rate=self.rate,
            slot=self.slot,
            limit_packets=1000 if self.limit is None else self.limit,
            ecn=self.ecn,
            partition=self.partition,
            seed=self.seed,
        )
