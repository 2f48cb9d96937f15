"""A reused testbed whose images were built from other sources is reported, never served
silently (issue #12 finding 7). Seen for real: a testbed started before the process API was
merged answered `unknown op 'proc_spawn'` to a harness that had it, and nothing said why."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from netbed import images
from netbed.testbed import StaleImageWarning, Testbed


def make_tree(root: Path, agent: str = "print('agent')\n") -> Path:
    (root / "services" / "agent").mkdir(parents=True)
    (root / "harness" / "netbed_core").mkdir(parents=True)
    (root / "services" / "agent" / "a.py").write_text(agent)
    (root / "harness" / "netbed_core" / "c.py").write_text("X = 1\n")
    (root / "compose.yaml").write_text("services: {}\n")
    return root


def test_digest_follows_the_sources_and_ignores_bytecode(tmp_path: Path) -> None:
    one = images.sources_digest(make_tree(tmp_path / "one"))
    assert one == images.sources_digest(make_tree(tmp_path / "same"))
    assert one != images.sources_digest(make_tree(tmp_path / "changed", agent="print('new op')\n"))
    cache = tmp_path / "one" / "services" / "agent" / "__pycache__"
    cache.mkdir()
    (cache / "a.cpython-311.pyc").write_bytes(b"\0bytecode")
    assert images.sources_digest(tmp_path / "one") == one
    (tmp_path / "one" / "harness" / "other.py").write_text("outside the image sources\n")
    assert images.sources_digest(tmp_path / "one") == one


class FakeContainer:
    def __init__(self, service: str, sources: str | None) -> None:
        labels = {"com.docker.compose.service": service}
        if sources is not None:
            labels[images.LABEL_SOURCES] = sources
        self.labels, self.attrs, self.status = labels, {"Config": {"Labels": labels}}, "running"


def test_stale_services_names_each_host_and_its_digest() -> None:
    containers: dict[str, Any] = {"client": FakeContainer("client", "aaaa"), "router": FakeContainer("router", "bbbb"),
                                  "server": FakeContainer("server", None)}
    assert images.stale_services(containers, "aaaa") == {"router": "bbbb", "server": "unknown"}
    assert images.stale_services({"client": containers["client"]}, "aaaa") == {}


def test_a_stale_reused_testbed_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "checkout")
    tb = Testbed("stale-check", client=object(), compose_files=[root / "compose.yaml"])  # type: ignore[arg-type]
    current = images.sources_digest(root)
    monkeypatch.setattr(tb, "containers", lambda: {"client": FakeContainer("client", current),
                                                   "router": FakeContainer("router", "0ld0ld0ld0ld")})
    with pytest.warns(StaleImageWarning, match=r"router \(built from 0ld0ld0ld0ld\).*make up"):
        tb.warn_if_stale()
    monkeypatch.setattr(tb, "containers", lambda: {"router": FakeContainer("router", current)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tb.warn_if_stale()
