"""The router's impairment timeline over the wire: `Router.events()` and `netbed events`."""

from __future__ import annotations

import json

import pytest

from netbed import cli
from netbed.host import Router
from netbed.testbed import Testbed
from netbed.timeline import NO_EVENTS


def test_the_router_records_impair_clear_and_reset_in_order(router: Router) -> None:
    start = router.events(since=NO_EVENTS)
    assert start["events"] == [] and start["max_events"] > 0
    router.impair("delay 5ms seed 11", direction="to-server", match="udp:5000")
    router.clear("to-server")
    router.reset()
    reply = router.events(since=start["next_seq"] - 1)
    assert [(e["kind"], e["direction"], e["origin"]) for e in reply["events"]] == [
        ("impair", "to-server", "impair"),
        ("clear", "to-server", "clear"),
        ("clear", "to-server", "reset"),
        ("clear", "to-client", "reset"),
    ]
    first = reply["events"][0]
    assert first["seed"] == 11 and first["match"] == "udp:5000" and first["spec"]["delay"]["delay_ms"] == 5.0
    assert [e["seq"] for e in reply["events"]] == list(range(start["next_seq"], start["next_seq"] + 4))
    assert first["wall_s"] <= reply["events"][-1]["wall_s"] and reply["complete"]


def test_netbed_events_prints_the_timeline(testbed: Testbed, router: Router,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    since = router.events(since=NO_EVENTS)["next_seq"] - 1
    router.impair("loss 1% seed 5", direction="to-client")
    assert cli.main(["--instance", testbed.instance, "events", "--since", str(since), "--json"]) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert [(e["kind"], e["direction"], e["seed"]) for e in events] == [("impair", "to-client", 5)]
    assert cli.main(["--instance", testbed.instance, "events", "--since", str(since)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "to-client" in line and "loss random 1% seed 5" in line


def test_a_negative_since_is_refused_by_name(testbed: Testbed, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--instance", testbed.instance, "events", "--since", "-1"]) == 1
    assert "'since'" in capsys.readouterr().err
