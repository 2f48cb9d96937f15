"""The netem marker reaches the router as written (issue #12 finding 10: its text was dropped
when a profile was given)."""

from __future__ import annotations

import pytest

from netbed.host import Router
from netbed.profiles import profile, resolve
from netbed_core.netem import parse


@pytest.mark.netem("seed 7", profile="wan", direction="to-server")
def test_marker_profile_plus_seed(router: Router) -> None:
    status = router.impair_status()["directions"]
    applied = status["to-server"]["impairment"]["spec"]
    assert applied == resolve("seed 7", "wan").to_dict()
    assert applied["seed"] == 7
    assert applied["delay"] == parse(profile("wan")).to_dict()["delay"]
    assert status["to-client"]["impairment"] is None
