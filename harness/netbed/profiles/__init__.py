"""Named impairment profiles, from YAML (bundled default.yaml, or a file of yours).

A profile file maps NAME -> {"netem": "<netem syntax>", "about": "<one line>"}.
NETBED_PROFILES names an extra file whose profiles override the bundled ones.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from netbed_core.netem import Netem, NetemError, parse

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


def overridden(base: Netem, extra: Netem) -> Netem:
    """`base` with every setting that `extra` makes replaced by `extra`'s.

    A section (delay, loss, ...) or scalar (seed, limit, ...) is replaced whole, never merged
    field by field, so "wan" + "loss 2%" is wan's delay with 2% loss, and "wan" + "seed 7" is
    wan, seeded. The result is validated again as a whole (e.g. a profile's reorder still needs
    a delay).
    """
    pristine = Netem()
    changes = {f.name: getattr(extra, f.name) for f in dataclasses.fields(Netem)
               if getattr(extra, f.name) != getattr(pristine, f.name)}
    if extra.extra:
        keys = {type(section) for section in extra.extra}
        changes["extra"] = (*(s for s in base.extra if type(s) not in keys), *extra.extra)
    return dataclasses.replace(base, **changes)


def resolve(netem: str = "", profile_name: str | None = None) -> Netem:
    """The impairment a user asked for: netem text, a named profile, or a profile that the
    text's settings override (e.g. profile "wan" with "seed 7"). Raises NetemError for bad
    text and NetbedError for an unknown profile."""
    text = parse(netem)
    if not profile_name:
        return text
    return overridden(parse(profile(profile_name)), text)
