"""Makefile variables reach netbed as data, never as shell code (issue: CI-grade, finding 3).

Each case reproduces an injection that worked before: a redirection in ARGS created a file on
the host, a `;` in INSTANCE ran a command, and `$(shell ...)` would have been expanded by make.
netbed must now receive the text verbatim and reject it with a message naming the bad part.
None of these reach Docker: the CLI validates the input before it connects.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from netbed import cli
from netbed_core.netem import parse

ROOT = Path(__file__).resolve().parents[2]


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "-s", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(autouse=True)
def _needs_venv() -> None:
    if not (ROOT / ".venv" / "bin" / "netbed").exists():
        pytest.skip("needs the project's .venv (run `make venv`)")


def test_redirection_in_args_creates_no_file(tmp_path: Path) -> None:
    target = tmp_path / "x"
    proc = make("impair", f"ARGS=delay 100ms > {target}")
    assert proc.returncode == 2, proc
    assert not target.exists()
    assert 'unknown keyword ">"' in proc.stderr


def test_make_function_in_args_is_not_expanded(tmp_path: Path) -> None:
    target = tmp_path / "y"
    proc = make("impair", f"ARGS=$(shell touch {target})")
    assert proc.returncode == 2, proc
    assert not target.exists()
    assert 'unknown keyword "$(shell"' in proc.stderr


def test_command_in_instance_is_not_run() -> None:
    proc = make("status", "INSTANCE=x; echo INJECTED")
    assert proc.returncode != 0
    assert "INJECTED" not in proc.stdout
    assert "bad testbed instance name 'x; echo INJECTED'" in proc.stderr


def test_command_substitution_in_dir_is_not_run(tmp_path: Path) -> None:
    target = tmp_path / "z"
    proc = make("clear", f"DIR=$$(touch {target})")
    assert proc.returncode == 2, proc
    assert not target.exists()
    assert "invalid choice" in proc.stderr


def test_a_pasted_shell_prompt_is_the_netem_line_not_a_comment() -> None:
    """`ARGS='# tc qdisc ... netem delay 100ms'` used to be a shell comment, so make cleared the
    router and exited 0. The text now reaches the parser, which reads the pasted tc line."""
    assert parse("# tc qdisc add dev eth0 root netem delay 100ms") == parse("delay 100ms")


def test_empty_impair_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An empty impairment used to clear the router and exit 0."""
    assert cli.main(["impair"]) == 2
    assert "netbed clear" in capsys.readouterr().err
    assert cli.main(["impair", "--", ""]) == 2
