"""Rules that span sections: the one place that says which sections need or exclude others.

* ``partition`` stands alone (it drops every packet, so nothing else could apply);
* ``reorder`` above 0% needs a delay above zero (reordering sends some packets without it);
* ``gap`` needs ``reorder`` above 0%;
* ``ecn`` needs a loss model (it marks packets that would be lost).

:func:`check_model` runs on every :class:`~netbed_core.netem.model.Netem`; the parser runs
:func:`check_partition_alone` first, on the tokens as written, for a message that quotes them.
Each section validates its own values. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping

from .checks import NetemError
from .delay import Delay
from .loss import RandomLoss
from .reorder import Reorder
from .section import NetemView
from .slot import Slot
from .trace_section import TraceLink

__all__ = ["check_model", "check_partition_alone"]


def _partition_error(other: str) -> NetemError:
    return NetemError(
        f'netem: "partition" cannot be combined with "{other}": a partition drops every packet, so '
        "nothing else applies", token=other, expected='"partition" on its own')


def check_partition_alone(seen: Mapping[str, str]) -> None:
    """``seen``: keyword -> token as written, in input order."""
    if "partition" in seen and len(seen) > 1:
        raise _partition_error(next(tok for kw, tok in seen.items() if kw != "partition"))


def check_model(n: NetemView) -> None:
    """Raise :class:`NetemError` if the sections of ``n`` do not go together.

    ``n`` is a :class:`~.section.NetemView` (model.py, which calls this, imports this module),
    so the sections are narrowed with ``isinstance`` before their fields are read.
    """
    if n.partition:
        others = [kw for kw in n.settings() if kw != "partition"]
        if others:
            raise _partition_error(others[0])
    if isinstance(n.reorder, Reorder):
        if n.reorder.pct > 0 and (not isinstance(n.delay, Delay) or n.delay.delay_ms == 0):
            raise NetemError(
                'netem: "reorder" needs a delay: reordering sends some packets without the '
                'delay, e.g. "delay 10ms reorder 25%"',
                token="reorder", expected="a delay above zero")
        if n.reorder.pct == 0 and n.reorder.gap > 1:
            raise NetemError('netem: "gap" needs "reorder" with a percentage above 0',
                             token="gap", expected="a reorder percentage above 0")
    trace = n.raw(TraceLink)
    if trace is not None and (n.rate is not None or isinstance(n.raw(Slot), Slot)):
        other = "rate" if n.rate is not None else "slot"
        raise NetemError(f'netem: "trace" cannot be combined with "{other}": the trace is the link\'s rate',
                         token=other, expected='"trace" without "rate" or "slot"')
    if n.ecn and (n.loss is None or (isinstance(n.loss, RandomLoss) and n.loss.pct == 0)):
        raise NetemError('netem: "ecn" needs a loss model: ECN marks packets that would be lost',
                         token="ecn", expected="a loss setting")
