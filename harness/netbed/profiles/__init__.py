"""Named impairment profiles, from YAML (bundled default.yaml, or a file of yours).

A profile file maps NAME -> {"netem": "<netem syntax>", "about": "<one line>"}.
NETBED_PROFILES names an extra file whose profiles override the bundled ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from netbed_core.netem import NetemError, parse

from ..errors import NetbedError

DEFAULT_FILE = Path(__file__).with_name("default.yaml")


@dataclass(frozen=True)
class Profile:
    name: str
    netem: str
    about: str


def _load(path: Path) -> dict[str, Profile]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise NetbedError(f"cannot read profiles from {path}: {exc}") from None
    if not isinstance(data, dict):
        raise NetbedError(f"{path}: expected a mapping of profile names")
    profiles = {}
    for name, body in data.items():
        if not isinstance(body, dict) or set(body) - {"netem", "about"} or "netem" not in body:
            raise NetbedError(f"{path}: profile {name!r} must be a mapping with 'netem' (and optional 'about')")
        try:
            parse(str(body["netem"]))
        except NetemError as exc:
            raise NetbedError(f"{path}: profile {name!r}: {exc}") from None
        profiles[str(name)] = Profile(str(name), str(body["netem"]), str(body.get("about", "")))
    return profiles


def load_profiles() -> dict[str, Profile]:
    profiles = _load(DEFAULT_FILE)
    extra = os.environ.get("NETBED_PROFILES")
    if extra:
        profiles.update(_load(Path(extra)))
    return profiles


def profile(name: str) -> str:
    """The netem text of profile `name`, or an error listing the known names."""
    profiles = load_profiles()
    if name not in profiles:
        raise NetbedError(f"unknown profile {name!r}; known: {', '.join(sorted(profiles))}")
    return profiles[name].netem
