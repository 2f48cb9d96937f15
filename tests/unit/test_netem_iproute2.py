"""The arguments the kernel backend hands tc (netbed_core.netem.iproute2.tc_command_args)."""

from __future__ import annotations

import pytest

from netbed_core.netem import parse, to_tc_args
from netbed_core.netem.iproute2 import tc_command_args


@pytest.mark.parametrize(("text", "expected"), [
    # iproute2 sends the correlations only after a delay or loss correlation token: an explicit
    # 0% delay correlation carries the duplicate correlation to the kernel.
    ("duplicate 1% 10%", "limit 1000 delay 0ms 0ms 0% duplicate 1% 10%"),
    ("duplicate 1% 10% delay 1ms", "limit 1000 delay 1ms 0ms 0% duplicate 1% 10%"),
    ("duplicate 1% 10% delay 1ms 2ms distribution normal",
     "limit 1000 delay 1ms 2ms 0% distribution normal duplicate 1% 10%"),
    ("duplicate 1% 10% delay 1ms 2ms 5%", "limit 1000 delay 1ms 2ms 5% duplicate 1% 10%"),
])
def test_duplicate_correlation_is_carried(text: str, expected: str) -> None:
    assert " ".join(tc_command_args(parse(text))) == expected


@pytest.mark.parametrize("text", ["duplicate 1%", "delay 10ms 1ms loss 5% 10%", "partition", ""])
def test_everything_else_is_the_canonical_form(text: str) -> None:
    netem = parse(text)
    assert tc_command_args(netem) == to_tc_args(netem)
