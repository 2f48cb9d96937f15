"""The netem marker reaches the router as written (issue #12 finding 10: its text was dropped
when a profile was given). The text overrides a section both backends apply (a seed would not
do on the kernel backend with iproute2 before 6.3; tests/unit/test_profiles.py covers seeding a
profile)."""

from __future__ import annotations

import pytest

from netbed.host import Router
from netbed.profiles import profile, resolve
from netbed_core.netem import parse


@pytest.mark.netem("loss 2%", profile="wan", direction="to-server")
def test_marker_profile_plus_text(router: Router) -> None:
    status = router.impair_status()["directions"]
    applied = status["to-server"]["impairment"]["spec"]
    assert applied == resolve("loss 2%", "wan").to_dict()
    assert applied["loss"]["pct"] == 2.0
    assert parse(profile("wan")).to_dict()["loss"]["pct"] != 2.0  # the text changed something
    assert applied["delay"] == parse(profile("wan")).to_dict()["delay"]
    assert status["to-client"]["impairment"] is None
