"""netbed's netem parser and renderer against iproute2's own tc, line by line.

For every line of the corpus (corpus.py, about 1,600 lines) both sides decide:
* tc: run in a throwaway network namespace under strace; the RTM_NEWQDISC message it sends
  (decoded by netbed_testkit.tc_netem_wire) is its reading of the line, no message is a refusal.
* netbed: `parse(line)`, then the arguments the kernel backend would run
  (`tc_command_args`), which tc reads too.

Agreement means: both refuse; or both accept and tc reads netbed's arguments as the same values
it read from the user's line (attributes holding a new qdisc's defaults count as absent); or
the difference is one of the documented departures (departures.py, docs/netem.md). And for every
line netbed accepts, tc must accept netbed's arguments (the model's promise), except `seed` on
an iproute2 older than 6.3. The test fails on any other line and writes the figures to
reports/tc-differential.json, which the README quotes.

Needs root (a network namespace), `ip`, `tc` and `strace`; tc parses netem's arguments before it
asks the kernel, so the machine needs no sch_netem.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from netbed_core.netem import Netem, NetemError, parse
from netbed_core.netem.checks import U32_MAX
from netbed_core.netem.iproute2 import tc_command_args
from netbed_testkit.tc_netem_wire import TcVerdict, run_tc_batch

sys.path.insert(0, str(Path(__file__).parent))
import corpus  # noqa: E402
import departures  # noqa: E402

REPORT = Path(__file__).resolve().parents[2] / "reports" / "tc-differential.json"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    for tool in ("ip", "tc", "strace"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (the differential test runs iproute2's tc under strace)"
    return None


@pytest.fixture(scope="module")
def netns() -> str:
    why = _missing()
    if why:
        pytest.skip(why)
    name = f"netbed-tcdiff-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def _tc_probability(pct: float) -> int:
    """tc's encoding of a percentage: rint(p / 100 * (2^32 - 1))."""
    return int((Decimal(repr(pct)) / 100 * U32_MAX).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _judge(line: str, theirs: TcVerdict, model: Netem | NetemError, ours: TcVerdict | None) -> str:
    """'agree', a departure class, or 'DISAGREE: why'."""
    if isinstance(model, NetemError):
        if not theirs.accepted:
            return "agree"
        return departures.refused_class(str(model), model.token) or f"DISAGREE: netbed refuses ({model}), tc accepts"
    assert ours is not None
    if not ours.accepted and model.seed is None:
        return f"DISAGREE: tc refuses netbed's own arguments: {ours.error}"
    if not theirs.accepted:
        return departures.accepted_class(line) or f"DISAGREE: netbed accepts, tc refuses ({theirs.error})"
    if not ours.accepted:
        return departures.accepted_class(line) or f"DISAGREE: tc refuses netbed's arguments: {ours.error}"
    if departures.as_applied(theirs.options) == departures.as_applied(ours.options):
        return "agree"
    if (model.duplicate is not None and departures.duplicate_correlation_fixed(theirs.options, ours.options)
            and ours.options["corr"][2] == _tc_probability(model.duplicate.correlation_pct)):
        return departures.DUPLICATE_CORRELATION
    return f"DISAGREE: values differ: tc read {theirs.options}, netbed's arguments give {ours.options}"


def test_netbed_agrees_with_tc(netns: str) -> None:
    lines = corpus.corpus()
    theirs = run_tc_batch(lines, netns=netns)
    models: dict[str, Netem | NetemError] = {}
    ours_args: dict[str, str] = {}
    for line in lines:
        try:
            model = parse(line)
        except NetemError as exc:
            models[line] = exc
            continue
        models[line] = model
        ours_args[line] = " ".join(tc_command_args(model))
    unique = sorted(set(ours_args.values()))
    ours = dict(zip(unique, run_tc_batch(unique, netns=netns), strict=True))

    verdicts = {line: _judge(line, verdict, models[line], ours.get(ours_args.get(line, "")))
                for line, verdict in zip(lines, theirs, strict=True)}
    classes = Counter(v for v in verdicts.values() if not v.startswith("DISAGREE"))
    disagreements = {line: v for line, v in verdicts.items() if v.startswith("DISAGREE")}
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({
        "lines": len(lines), "agree": classes.pop("agree", 0),
        "documented_departures": dict(classes.most_common()),
        "disagree": len(disagreements),
        "agreement_pct": round(100 * (len(lines) - len(disagreements)) / len(lines), 2),
        "tc": subprocess.run(["tc", "-V"], capture_output=True, text=True).stdout.strip(),
    }, indent=2) + "\n")
    assert not disagreements, (f"{len(disagreements)} of {len(lines)} lines disagree with tc:\n"
                               + "\n".join(f"  {line!r}: {why}" for line, why in list(disagreements.items())[:30]))
