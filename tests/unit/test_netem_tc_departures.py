"""Where netbed's parser and iproute2 tc 6.1 would read the same token differently (issue #9).

Each case was checked against tc 6.1 in a throwaway network namespace (tc parses netem
arguments before it talks to the kernel; see docs/netem.md, "Errors").
"""

from __future__ import annotations

import pytest

from netbed_core.netem import NetemError, parse


@pytest.mark.parametrize(("text", "token"), [
    ("delay 1ms reorder 5% gap 010", "010"),  # tc: gap 8 (octal)
    ("delay 1ms reorder 5% gap 08", "08"),  # tc: Illegal "gap"
    ("rate 1mbit 010", "010"),  # tc: packet overhead 8
    ("rate 1mbit -010", "-010"),  # tc: packet overhead -8
    ("rate 1mbit 0 010", "010"),  # tc: cell size 8
    ("rate 1mbit 0 48 010", "010"),  # tc: cell overhead 8
    ("slot 1ms packets 010", "010"),  # tc: 8 packets
    ("seed 010", "010"),  # tc >= 6.6: get_u64(..., 0), octal
])
def test_a_leading_zero_where_tc_reads_octal_is_refused(text: str, token: str) -> None:
    with pytest.raises(NetemError, match="without a leading zero \\(tc reads a leading 0 as octal") as err:
        parse(text)
    assert err.value.token == token


def test_zero_itself_and_limit_with_a_leading_zero_keep_their_decimal_value() -> None:
    # tc reads limit with get_size() (strtod, decimal): "limit 010" is 10 there too.
    assert parse("limit 010").limit_packets == 10
    assert parse("rate 1mbit 0 0 0").rate is not None


@pytest.mark.parametrize(("text", "packets"), [("limit 1k", 1024), ("limit 2.5kb", 2560), ("limit 1mbit", 131072)])
def test_limit_with_a_size_unit_says_what_tc_would_make_of_it(text: str, packets: int) -> None:
    token = text.split()[1]
    with pytest.raises(NetemError) as err:
        parse(text)
    assert str(err.value) == (f'netem: bad limit "{token}": expected a whole number of packets (tc reads limit as '
                              f'a size, so "{token}" would be {packets} packets: write {packets})')
