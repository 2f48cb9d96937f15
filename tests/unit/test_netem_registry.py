"""The registry of sections: one class is all a new section needs (docs/extending.md).

A throwaway section, defined and registered here only, is picked up by the parser, both
renderers, the summary, lint, the dict form, the settings list and the router's read-back with
no other change; the userspace engine refuses it until it is given a decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from netbed_core.netem import (
    REGISTRY,
    Ecn,
    Netem,
    NetemError,
    Section,
    Tokens,
    describe,
    from_dict,
    lint,
    parse,
    to_tc_args,
    to_text,
)
from netbed_core.netem.checks import check_pct, set_field
from netbed_core.netem.loss import LossModel
from netbed_core.netem.units import format_percent
from netbed_router.engine_config import CONFIG_STEPS, EngineConfig
from netbed_router.tc_readback import compare_netem_options, expected_netem_options

if TYPE_CHECKING:
    from netbed_core.netem.model import Netem as NetemType


@dataclass(frozen=True)
class Mark(Section):
    """``mark PERCENT``: a made-up section, for this test only (tc has no such keyword)."""

    key: ClassVar[str] = "mark"
    keywords: ClassVar[tuple[str, ...]] = ("mark",)

    pct: float

    def __post_init__(self) -> None:
        set_field(self, "pct", check_pct("pct", self.pct))

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        return Mark(tokens.pct(keyword, tokens.need(keyword, "a percentage", "a percentage like 1%")))

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        return {"mark": {"mark": 0.0}}

    def tc_args(self) -> list[str]:
        return ["mark", format_percent(self.pct)]

    def describe(self) -> str:
        return f"mark {format_percent(self.pct)}"

    def lint(self, netem: NetemType) -> list[str]:
        return ["mark 0% does nothing; remove it."] if self.pct == 0 else []

    def readback(self) -> dict[str, Any]:
        return {"mark": {"mark": self.pct / 100}}


@pytest.fixture()
def mark() -> Iterator[type[Mark]]:
    REGISTRY.register(Mark, before=Ecn)
    try:
        yield Mark
    finally:
        REGISTRY.unregister(Mark)


def test_a_registered_section_is_parsed_rendered_described_linted_and_serialised(mark: type[Mark]) -> None:
    n = parse("loss 1% ecn mark 5% delay 10ms")
    assert n.raw(Mark) == Mark(5.0)
    assert n.extra == (Mark(5.0),)
    assert to_tc_args(n) == ["limit", "1000", "delay", "10ms", "loss", "random", "1%", "mark", "5%", "ecn"]
    assert to_text(n) == "delay 10ms loss random 1% mark 5% ecn"
    assert parse(to_text(n)) == n
    assert describe(n) == "delay 10ms, loss 1%, mark 5%, ECN marks instead of drops"
    assert lint(parse("mark 0%")) == ["mark 0% does nothing; remove it."]
    assert n.settings() == ["delay", "loss", "mark", "ecn"]
    wire = n.to_dict()
    assert wire["mark"] == {"pct": 5.0}
    assert from_dict(wire) == n
    assert list(wire)[:12] == list(Netem().to_dict())  # the built-in wire form is untouched
    assert expected_netem_options(n)["mark"] == {"mark": 0.05}
    assert compare_netem_options(expected_netem_options(Netem()), {"limit": 1000, "ecn": False,
                                                                   "mark": {"mark": 0.05}}) == [
        "mark.mark: asked 0, kernel has 0.05"]


def test_a_registered_section_gets_the_parsers_messages(mark: type[Mark]) -> None:
    with pytest.raises(NetemError, match='"mark" needs a percentage'):
        parse("mark")
    with pytest.raises(NetemError, match='"mark" is given twice'):
        parse("mark 1% mark 2%")
    with pytest.raises(NetemError, match=r'unknown keyword "mrak" \(did you mean "mark"\?\)'):
        parse("mrak 1%")
    with pytest.raises(NetemError, match=r"expected a keyword \(limit, .*, seed, trace, mark, partition\)"):
        parse("nothing-like-it")
    with pytest.raises(NetemError, match='"partition" cannot be combined with "mark"'):
        parse("mark 1% partition")


def test_the_engine_refuses_a_section_it_has_no_decision_for(mark: type[Mark]) -> None:
    with pytest.raises(NetemError, match="the userspace engine cannot apply 'mark'"):
        EngineConfig.from_netem(parse("mark 1%"))


def test_unregistered_the_keyword_is_unknown_again() -> None:
    with pytest.raises(NetemError, match='unknown keyword "mark"'):
        parse("mark 1%")
    with pytest.raises(NetemError, match='unknown key "mark"'):
        from_dict({"mark": {"pct": 1.0}})


def test_register_refuses_a_clash() -> None:
    @dataclass(frozen=True)
    class Latency(Mark):
        keywords: ClassVar[tuple[str, ...]] = ("latency",)

    with pytest.raises(ValueError, match="clashes"):
        REGISTRY.register(Latency)
    assert Latency not in REGISTRY.sections


def test_every_netem_attribute_is_a_registered_section() -> None:
    attributes = [f.name for f in fields(Netem) if f.name != "extra"]
    assert sorted(attributes) == sorted(s.key for s in REGISTRY.sections)


def test_every_built_in_section_has_an_engine_step() -> None:
    concrete = [m for s in REGISTRY.sections for m in (LossModel.models().values() if s is LossModel else [s])]
    assert sorted(c.__name__ for c in concrete) == sorted(c.__name__ for c in CONFIG_STEPS)


def test_keywords_are_listed_in_tc_usage_order() -> None:
    assert REGISTRY.keywords == ("limit", "delay", "distribution", "loss", "ecn", "corrupt", "duplicate",
                                 "reorder", "gap", "rate", "slot", "seed", "trace", "partition")
