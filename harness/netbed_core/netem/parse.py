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

from collections.abc import Sequence

from .checks import NetemError
from .combine import check_partition_alone
from .model import Netem
from .registry import REGISTRY
from .section import Section, Tokens, suggest
from .units import starts_like_signed_number

__all__ = ["parse", "tokenize"]


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

    Each keyword is handed to the section that owns it (:data:`~.registry.REGISTRY`), which
    reads its arguments and returns a piece; once all tokens are read, each section builds
    itself from its pieces, and :class:`Netem` checks how the sections combine.
    """
    registry = REGISTRY
    tokens = Tokens(tokenize(text), registry.words)
    seen: dict[str, str] = {}  # canonical keyword -> token as written, in input order
    pieces: dict[type[Section], dict[str, object]] = {}
    while (tok := tokens.peek()) is not None:
        tokens.take()
        keyword = registry.synonyms.get(tok, tok)
        owner = registry.owners.get(keyword)
        if owner is None:
            raise _unknown(tok)
        if keyword in seen:
            first = seen[keyword]
            again = f' (already given as "{first}")' if first != tok else ""
            raise NetemError(f'netem: "{tok}" is given twice{again}', token=tok,
                             expected="each keyword at most once")
        seen[keyword] = tok
        pieces.setdefault(owner, {})[keyword] = owner.parse(tokens, keyword)
    check_partition_alone(seen)
    return Netem.of({section: section.build(pieces.get(section, {}), seen) for section in registry.sections})


def _unknown(tok: str) -> NetemError:
    expected = f"a keyword ({', '.join(REGISTRY.keywords)})"
    if starts_like_signed_number(tok) or tok.startswith((".", "+")):
        return NetemError(f'netem: unexpected "{tok}": expected {expected}', token=tok, expected=expected)
    hint = suggest(tok, (*REGISTRY.keywords, *REGISTRY.synonyms))
    if hint is not None:
        return NetemError(f'netem: unknown keyword "{tok}" (did you mean "{hint}"?)', token=tok, expected=expected)
    return NetemError(f'netem: unknown keyword "{tok}": expected {expected}', token=tok, expected=expected)
