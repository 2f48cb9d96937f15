"""Scenarios from YAML: the bundled named ones (profiles/scenarios.yaml) and files of yours.

A scenario file holds one scenario:

    about: a Wi-Fi link that drops out now and then
    repeat: 0                 # cycles; 0: until stopped
    steps:
      - netem: delay 4ms 3ms loss 1%
        duration: 20s
      - netem: partition
        duration: 2s

The named-scenario file maps NAME -> such a mapping. A malformed file is an error naming the
file, the line and the step, before anything changes (the steps are parsed by
``netbed_core.scenario``, as the router parses them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from netbed_core.scenario import Scenario, ScenarioError, parse_scenario

from .errors import NetbedError

NAMED_FILE = Path(__file__).with_name("profiles") / "scenarios.yaml"
SCENARIO_KEYS = frozenset({"steps", "repeat", "about"})


class ScenarioFileError(NetbedError):
    """A scenario file that cannot be used; the message names the file, the line and the step."""


@dataclass(frozen=True)
class NamedScenario:
    name: str
    scenario: Scenario
    about: str


def _compose(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise ScenarioFileError(f"cannot read scenario file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ScenarioFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.Node):
                return v
    return None


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _parse_one(path: Path, name: str, body: Any, node: yaml.Node | None) -> NamedScenario:
    label = f"scenario {name!r}" if name else "scenario"
    if not isinstance(body, dict):
        raise ScenarioFileError(f"{path}:{_line(node)}: {label}: expected a mapping with 'steps' "
                                f"(and optional 'repeat', 'about'), got {type(body).__name__}")
    unknown = sorted(str(k) for k in body if k not in SCENARIO_KEYS)
    if unknown:
        raise ScenarioFileError(f"{path}:{_line(node)}: {label}: unknown key(s) {', '.join(map(repr, unknown))}; "
                                f"a scenario has {', '.join(sorted(SCENARIO_KEYS))}")
    steps_node = _child(node, "steps")
    try:
        scenario = parse_scenario(body.get("steps"), body.get("repeat", 1))
    except ScenarioError as exc:
        line = _line(steps_node or node)
        if exc.step is not None and isinstance(steps_node, yaml.SequenceNode) and exc.step <= len(steps_node.value):
            line = _line(steps_node.value[exc.step - 1])
        elif "repeat" in str(exc):
            line = _line(_child(node, "repeat") or node)
        raise ScenarioFileError(f"{path}:{line}: {label}: {exc}") from None
    return NamedScenario(name, scenario, str(body.get("about", "")))


def load_file(path: str | Path) -> NamedScenario:
    """The one scenario in the file at ``path``."""
    p = Path(path)
    data, node = _compose(p)
    return _parse_one(p, "", data, node)


def load_named(path: Path = NAMED_FILE) -> dict[str, NamedScenario]:
    """Every named scenario in ``path`` (default: the bundled file, plus NETBED_SCENARIOS's
    file, whose names override the bundled ones)."""
    found = _load_named(path)
    extra = os.environ.get("NETBED_SCENARIOS")
    if path == NAMED_FILE and extra:
        found.update(_load_named(Path(extra)))
    return found


def _load_named(path: Path) -> dict[str, NamedScenario]:
    data, node = _compose(path)
    if not isinstance(data, dict):
        raise ScenarioFileError(f"{path}:1: expected a mapping of scenario names")
    return {str(name): _parse_one(path, str(name), body, _child(node, str(name))) for name, body in data.items()}


def resolve(what: str) -> NamedScenario:
    """A named scenario, or the file ``what`` (anything with a / or ending .yaml/.yml)."""
    if what.endswith((".yaml", ".yml")) or os.sep in what:
        return load_file(what)
    named = load_named()
    if what not in named:
        raise ScenarioFileError(f"unknown scenario {what!r}; known: {', '.join(sorted(named))} "
                                "(or give a FILE.yaml)")
    return named[what]


__all__ = ["NAMED_FILE", "NamedScenario", "ScenarioFileError", "load_file", "load_named", "resolve"]
