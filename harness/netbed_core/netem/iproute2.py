"""The tc arguments the kernel backend runs: :func:`~.render.to_tc_args` plus workarounds for
iproute2 bugs, so that the kernel gets exactly the model's values.

* **Duplicate correlation.** iproute2 (checked on 6.1 by the differential test) sends the
  correlations (``TCA_NETEM_CORR``) only when a *delay or loss* correlation token was given:
  ``duplicate 1% 10%`` alone reaches the kernel with no duplicate correlation. An explicit
  delay correlation of 0% (``delay 0ms 0ms 0%`` when there is no delay) makes tc send the
  attribute, and it changes nothing else: a zero delay and jitter, and a zero delay correlation
  are netem's defaults.

``to_tc_args`` itself stays the model's canonical form (``parse(to_tc_args(n)) == n``); only
what is handed to tc differs. Standard library only.
"""

from __future__ import annotations

from .delay import Delay
from .render import to_tc_args
from .section import NetemView
from .units import format_time_ms

__all__ = ["tc_command_args"]


def _delay_with_correlation(delay: Delay) -> list[str]:
    """``delay X J C% [distribution D]`` with J and C always given."""
    if delay.correlation_pct != 0:
        return delay.tc_args()
    tokens = ["delay", format_time_ms(delay.delay_ms), format_time_ms(delay.jitter_ms), "0%"]
    return tokens + (["distribution", delay.distribution] if delay.distribution else [])


def tc_command_args(netem: NetemView) -> list[str]:
    """The tokens for ``tc qdisc replace dev X root netem <tokens>`` that give the kernel the
    model's values, working around iproute2's dropped duplicate correlation."""
    duplicate = getattr(netem, "duplicate", None)
    if duplicate is None or duplicate.correlation_pct == 0:
        return to_tc_args(netem)
    out: list[str] = []
    for section in netem.sections():
        if isinstance(section, Delay):
            out += _delay_with_correlation(section)
        elif section.key == "duplicate":
            if getattr(netem, "delay", None) is None:
                out += _delay_with_correlation(Delay(0.0))
            out += section.tc_args()
        else:
            out += section.tc_args()
    return out
