"""The ``loss`` section and its three models: ``random``, ``state`` (4-state Markov) and
``gemodel`` (Gilbert-Elliott). The registry holds :class:`LossModel`, which parses ``loss``
and picks the model; each model renders, describes, lints and reads back itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeAlias

from .checks import NetemError, check_pct, set_field
from .section import PCT, NetemView, Section, Tokens, build_from_dict, plain, suggest
from .units import format_percent, starts_like_signed_number

__all__ = ["GemodelLoss", "Loss", "LossModel", "RandomLoss", "StateLoss"]


class LossModel(Section):
    """What the three loss models share: the ``loss`` keyword, its parser and its dict form
    (``{"model": NAME, ...fields}``)."""

    key: ClassVar[str] = "loss"
    keywords: ClassVar[tuple[str, ...]] = ("loss",)
    synonyms: ClassVar[Mapping[str, str]] = {"drop": "loss"}
    model: ClassVar[str]

    @classmethod
    def models(cls) -> dict[str, type[LossModel]]:
        return {m.model: m for m in (RandomLoss, StateLoss, GemodelLoss)}

    @classmethod
    def check(cls, raw: object) -> None:
        if raw is not None and not isinstance(raw, LossModel):
            raise NetemError(f'netem: "loss" must be a RandomLoss or None, not {raw!r}', token="loss",
                             expected="RandomLoss")

    @classmethod
    def to_wire(cls, raw: object) -> object:
        return None if not isinstance(raw, LossModel) else {"model": raw.model, **plain(raw)}

    @classmethod
    def from_wire(cls, data: object) -> object:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise NetemError(f'netem: "loss" must be an object or null, not {data!r}', token="loss",
                             expected="an object or null")
        model = data.get("model")
        models = cls.models()
        if not isinstance(model, str) or model not in models:
            raise NetemError(f'netem: unknown loss model {model!r}: expected random, state or gemodel',
                             token=str(model), expected="random, state or gemodel")
        return build_from_dict(models[str(model)], "loss", data, skip=("model",))

    @classmethod
    def parse(cls, tokens: Tokens, keyword: str) -> object:
        expected = "a percentage like 1%, or random, state or gemodel"
        tok = tokens.need(keyword, "a percentage or a model (random, state, gemodel)", expected)
        if tok == "random":
            pct = tokens.pct("loss", tokens.need(f"{keyword} random", "a percentage", PCT))
            return RandomLoss(pct, tokens.opt_pct("loss correlation"))
        if tok == "state":
            p13 = tokens.pct("loss state p13", tokens.need(f"{keyword} state", "a percentage (p13)", PCT))
            rest = tokens.optional_pcts(("p31", "p32", "p23", "p14"), "loss state")
            defaults = [float(Decimal(100) - Decimal(repr(p13))), 0.0, 100.0, 0.0]
            vals = rest + defaults[len(rest):]
            return StateLoss(p13, vals[0], vals[1], vals[2], vals[3])
        if tok == "gemodel":
            p = tokens.pct("loss gemodel p", tokens.need(f"{keyword} gemodel", "a percentage (p)", PCT))
            rest = tokens.optional_pcts(("r", "1-h", "1-k"), "loss gemodel")
            defaults = [float(Decimal(100) - Decimal(repr(p))), 100.0, 0.0]
            vals = rest + defaults[len(rest):]
            return GemodelLoss(p, vals[0], vals[1], vals[2])
        if not (starts_like_signed_number(tok) or tok.startswith(".")):
            hint = suggest(tok, ("random", "state", "gemodel"))
            if hint is not None:
                raise NetemError(f'netem: unknown loss model "{tok}" (did you mean "{hint}"?)',
                                 token=tok, expected=expected)
            raise tokens.bad("loss", tok, expected)
        pct = tokens.pct("loss", tok)
        return RandomLoss(pct, tokens.opt_pct("loss correlation"))

    @classmethod
    def readback_zeros(cls) -> dict[str, dict[str, float] | None]:
        return {
            "loss-random": {"loss": 0.0, "correlation": 0.0},
            "loss-state": {"p13": 0.0, "p31": 0.0, "p32": 0.0, "p23": 0.0, "p14": 0.0},
            "loss-gemodel": {"p": 0.0, "r": 0.0, "1-h": 0.0, "1-k": 0.0},
        }


@dataclass(frozen=True)
class RandomLoss(LossModel):
    """``loss [random] PERCENT [CORRELATION]``: independent (Bernoulli) loss.

    Attributes:
        pct: probability that a packet is dropped, 0-100.
        correlation_pct: dependence on the previous random value, 0-100 (deprecated by netem).
    """

    model: ClassVar[Literal["random"]] = "random"
    pct: float
    correlation_pct: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "pct", check_pct("pct", self.pct))
        set_field(self, "correlation_pct", check_pct("correlation_pct", self.correlation_pct))

    def tc_args(self) -> list[str]:
        out = ["loss", "random", format_percent(self.pct)]
        if self.correlation_pct != 0:
            out.append(format_percent(self.correlation_pct))
        return out

    def describe(self) -> str:
        corr = f" ({format_percent(self.correlation_pct)} correlated)" if self.correlation_pct else ""
        return f"loss {format_percent(self.pct)}{corr}"

    def lint(self, netem: NetemView) -> list[str]:
        out: list[str] = []
        if self.pct == 100:
            out.append('loss 100% drops every packet, so nothing else in this setting can be observed; '
                       'write "partition" instead, which says so.')
        if self.pct == 0:
            out.append("loss 0% drops nothing; remove it.")
        if self.correlation_pct > 0:
            out.append(
                f"loss correlation {format_percent(self.correlation_pct)} does not give bursty loss: "
                'tc-netem(8) says the "loss random" correlation "is now deprecated due to the noticed bad '
                'behavior"; model bursts with "loss state P13 P31" or "loss gemodel P R" instead.')
        return out

    def readback(self) -> dict[str, Any]:
        if self.pct == 0:
            return {}  # tc prints loss-random only above 0%: its correlation cannot be read back
        return {"loss-random": {"loss": self.pct / 100, "correlation": self.correlation_pct / 100}}


@dataclass(frozen=True)
class StateLoss(LossModel):
    """``loss state P13 [P31 [P32 [P23 [P14]]]]``: 4-state Markov loss model (percent, 0-100).

    State 1 = good reception, 2 = good reception within a burst, 3 = burst losses,
    4 = independent losses. ``pXY`` is the transition probability from state X to Y.
    Defaults when omitted (tc): p31 = 100 - p13, p32 = 0, p23 = 100, p14 = 0.
    """

    model: ClassVar[Literal["state"]] = "state"
    p13_pct: float
    p31_pct: float
    p32_pct: float = 0.0
    p23_pct: float = 100.0
    p14_pct: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            set_field(self, f.name, check_pct(f.name, getattr(self, f.name)))

    def tc_args(self) -> list[str]:
        return ["loss", "state"] + [format_percent(p) for p in (
            self.p13_pct, self.p31_pct, self.p32_pct, self.p23_pct, self.p14_pct)]

    def describe(self) -> str:
        p = format_percent
        return (f"4-state loss (p13 {p(self.p13_pct)}, p31 {p(self.p31_pct)}, "
                f"p32 {p(self.p32_pct)}, p23 {p(self.p23_pct)}, p14 {p(self.p14_pct)})")

    def readback(self) -> dict[str, Any]:
        return {"loss-state": {"p13": self.p13_pct / 100, "p31": self.p31_pct / 100, "p32": self.p32_pct / 100,
                               "p23": self.p23_pct / 100, "p14": self.p14_pct / 100}}


@dataclass(frozen=True)
class GemodelLoss(LossModel):
    """``loss gemodel P [R [1-H [1-K]]]``: Gilbert-Elliott loss model (percent, 0-100).

    Attributes:
        p_pct: transition probability good -> bad.
        r_pct: transition probability bad -> good (tc default 100 - p).
        one_minus_h_pct: loss probability in the bad state (default 100).
        one_minus_k_pct: loss probability in the good state (default 0).
    """

    model: ClassVar[Literal["gemodel"]] = "gemodel"
    p_pct: float
    r_pct: float
    one_minus_h_pct: float = 100.0
    one_minus_k_pct: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            set_field(self, f.name, check_pct(f.name, getattr(self, f.name)))

    def tc_args(self) -> list[str]:
        return ["loss", "gemodel"] + [format_percent(p) for p in (
            self.p_pct, self.r_pct, self.one_minus_h_pct, self.one_minus_k_pct)]

    def describe(self) -> str:
        p = format_percent
        return (f"Gilbert-Elliott loss (p {p(self.p_pct)}, r {p(self.r_pct)}, "
                f"1-h {p(self.one_minus_h_pct)}, 1-k {p(self.one_minus_k_pct)})")

    def readback(self) -> dict[str, Any]:
        return {"loss-gemodel": {"p": self.p_pct / 100, "r": self.r_pct / 100,
                                 "1-h": self.one_minus_h_pct / 100, "1-k": self.one_minus_k_pct / 100}}


Loss: TypeAlias = RandomLoss | StateLoss | GemodelLoss
"""Any of the three loss models."""
