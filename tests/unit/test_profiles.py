"""Named profiles: every bundled one parses; bad files and names are named in errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from netbed.errors import NetbedError
from netbed.profiles import load_profiles, profile, resolve
from netbed_core.netem import NetemError, parse

REQUIRED = {"lan", "wan", "lossy-wifi", "3g", "satellite", "congested", "flaky", "partition"}


def test_bundled_profiles_exist_and_parse() -> None:
    profiles = load_profiles()
    assert REQUIRED <= set(profiles)
    for item in profiles.values():
        assert item.about, f"profile {item.name} has no description"
        parse(item.netem)


def test_bundled_profiles_cite_a_source() -> None:
    text = (Path(__file__).parents[2] / "harness/netbed/profiles/default.yaml").read_text()
    blocks = text.split("\n\n")[1:]
    assert all("#" in block for block in blocks), "each profile needs a comment saying where its figures come from"


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(NetbedError, match=r"unknown profile 'nope'; known: 3g, congested"):
        profile("nope")


def test_user_profiles_override_and_are_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("wan:\n  netem: delay 10ms\n  about: mine\n")
    monkeypatch.setenv("NETBED_PROFILES", str(good))
    assert profile("wan") == "delay 10ms"
    bad = tmp_path / "bad.yaml"
    bad.write_text("broken:\n  netem: delay 10xs\n")
    monkeypatch.setenv("NETBED_PROFILES", str(bad))
    with pytest.raises(NetbedError, match=r"profile 'broken'.*10xs"):
        load_profiles()


def test_profile_plus_seed_is_the_profile_seeded() -> None:
    """Issue #12 finding 10: `netem("seed 7", profile="wan")` dropped the text; a profile could not be seeded."""
    combined = resolve("seed 7", "wan")
    assert combined == dataclasses.replace(parse(profile("wan")), seed=7)


def test_text_overrides_a_profile_section_whole() -> None:
    combined = resolve("loss 2%", "wan")
    wan = parse(profile("wan"))
    assert combined.delay == wan.delay
    assert combined.loss == parse("loss 2%").loss


def test_combination_is_validated_as_a_whole() -> None:
    with pytest.raises(NetemError, match="partition"):
        resolve("partition", "wan")


def test_text_alone_and_profile_alone() -> None:
    assert resolve("delay 10ms") == parse("delay 10ms")
    assert resolve("", "wan") == parse(profile("wan"))
