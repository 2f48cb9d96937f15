"""The router's --match parsing (PROTO[:PORT])."""

from __future__ import annotations

import pytest

pytest.importorskip("netbed_router")
from netbed_router.match import normalize_match, parse_match  # noqa: E402


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("", None), ("udp:5000", {"proto": "udp", "port": 5000}),
     ("TCP", {"proto": "tcp", "port": None}), ("icmp", {"proto": "icmp", "port": None})],
)
def test_good_matches(text: str | None, expected: dict | None) -> None:
    assert parse_match(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [("sctp", "unknown protocol 'sctp'"), ("udp:0", "port must be 1-65535"), ("udp:70000", "1-65535"),
     ("icmp:5", "icmp has no ports"), ("tcp:http", "got 'http'")],
)
def test_bad_matches_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_match(text)


def test_wire_dicts_are_validated_by_key() -> None:
    assert normalize_match({"proto": "udp", "port": 53}) == {"proto": "udp", "port": 53}
    with pytest.raises(ValueError, match="match.colour: unknown key"):
        normalize_match({"proto": "udp", "colour": 1})
    with pytest.raises(ValueError, match="only with a protocol that has ports"):
        normalize_match({"proto": "icmp", "port": 5})
