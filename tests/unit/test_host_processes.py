"""Host.run / Host.spawn against an in-process agent (no Docker), and the CLI's run/shell handling."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from agent_server import TOKEN, running_agent

from netbed import cli
from netbed.agent import AgentConnection
from netbed.errors import AgentError, CommandFailed, HostNotRunning, ProcessTimeout, RemoteOSError, TestbedNotRunning
from netbed.host import Host
from netbed.process import RunResult


@pytest.fixture
def host() -> Iterator[Host]:
    with running_agent() as server:
        conn = AgentConnection("client", *server.server_address[:2], TOKEN)
        h = Host("client", conn, "10.0.0.1", "fd00::1")
        try:
            yield h
        finally:
            h.close()


def test_run_returns_a_result_with_both_streams(host: Host) -> None:
    result = host.run(["sh", "-c", "printf 'a\\377b'; echo oops >&2; exit 4"], timeout=5)
    assert isinstance(result, RunResult)
    assert (result.returncode, result.stdout, result.stderr) == (4, b"a\xffb", b"oops\n")
    assert result.stdout_text == "a\ufffdb" and result.stderr_text == "oops\n"
    assert result.truncated is False
    assert result.argv == ("sh", "-c", "printf 'a\\377b'; echo oops >&2; exit 4")
    assert result.duration_s > 0


def test_run_timeout_raises_a_timeout_error_carrying_the_output(host: Host) -> None:
    started = time.monotonic()
    with pytest.raises(ProcessTimeout) as caught:
        host.run(["sh", "-c", "echo partial; echo half >&2; sleep 8"], timeout=1)
    assert time.monotonic() - started < 3
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.stdout == b"partial\n" and caught.value.stderr == b"half\n"
    assert "process group was killed" in str(caught.value)


def test_check_raises_command_failed_with_the_command_and_stderr_tail(host: Host) -> None:
    script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 7"
    with pytest.raises(CommandFailed) as caught:
        host.run(["sh", "-c", script], timeout=5, check=True)
    error = caught.value
    assert error.returncode == 7
    assert "exited with 7" in str(error) and "'sh', '-c'" in str(error)
    assert "line30" in str(error) and "line1\n" not in str(error)  # the tail, not all of it
    assert host.run(["true"], timeout=5, check=True).returncode == 0


def test_missing_program_raises_remote_oserror_naming_it(host: Host) -> None:
    with pytest.raises(RemoteOSError) as caught:
        host.run(["definitely-not-installed"], timeout=5)
    assert caught.value.errno_name == "ENOENT" and "definitely-not-installed" in str(caught.value)


def test_bad_types_are_bad_requests(host: Host) -> None:
    for kwargs in ({"argv": "ls -l"}, {"argv": ["ls"], "env": {"A": 1}}, {"argv": ["ls"], "cwd": 3},
                   {"argv": ["ls"], "timeout": "x"}, {"argv": ["ls"], "timeout": None},
                   {"argv": ["ls"], "timeout": -1}):
        argv = kwargs.pop("argv")
        kwargs.setdefault("timeout", 5)
        with pytest.raises(AgentError) as caught:
            host.run(argv, **kwargs)  # type: ignore[arg-type]
        assert getattr(caught.value, "kind", None) == "bad_request", caught.value


def test_spawn_output_and_context_manager_kill(host: Host) -> None:
    with host.spawn(["sh", "-c", "echo up; echo e >&2; exec sleep 30"]) as proc:
        # stdout and stderr are read by two pump threads: wait for both, not only stdout (the
        # first version did, and a fresh-clone CI run saw stderr still empty).
        deadline = time.monotonic() + 5
        while (proc.output().stdout, proc.output().stderr) != (b"up\n", b"e\n") and time.monotonic() < deadline:
            time.sleep(0.02)
        output = proc.output()
        assert (output.stdout, output.stderr) == (b"up\n", b"e\n")
        assert proc.returncode is None and proc.pid > 0
        assert host.processes == [proc]
        with pytest.raises(TimeoutError):
            proc.wait(0.1)
    assert proc.returncode == -9
    assert host.processes == []


def test_terminate_then_wait_and_kill_processes(host: Host) -> None:
    proc = host.spawn(["sleep", "30"])
    assert proc.terminate() is True
    assert proc.wait(5) == -15
    other = host.spawn(["sleep", "30"])
    assert host.kill_processes() == 2
    assert other.closed and host.processes == []


def test_a_stopped_host_is_named_with_its_instance() -> None:
    class Container:
        labels = {"io.netbed.instance": "ci-42"}

    with running_agent() as server:
        conn = AgentConnection("server", *server.server_address[:2], TOKEN)
    conn.close()  # the agent is gone (its listener closed): the next call must reconnect, and fails
    h = Host("server", conn, "", "", container=Container())
    with pytest.raises(HostNotRunning) as caught:
        h.run(["true"], timeout=5)
    assert isinstance(caught.value, TestbedNotRunning)
    assert "server" in str(caught.value) and "'ci-42'" in str(caught.value)


# -- the CLI --------------------------------------------------------------------------------
class FakeHost:
    def __init__(self, result: RunResult | Exception) -> None:
        self.result = result
        self.calls: list[tuple[list[str], float]] = []

    def run(self, argv: list[str], *, timeout: float) -> RunResult:
        self.calls.append((argv, timeout))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def fake_testbed(monkeypatch: pytest.MonkeyPatch) -> Any:
    holder: dict[str, Any] = {}

    class FakeTestbed:
        def __init__(self, instance: str | None) -> None:
            holder["instance"] = instance

        def host(self, name: str) -> FakeHost:
            holder["name"] = name
            return holder["host"]

        def close_connections(self) -> None:
            holder["closed"] = True

    monkeypatch.setattr(cli, "Testbed", FakeTestbed)
    monkeypatch.setattr(cli.reaper, "reap_orphans", lambda client: None)
    monkeypatch.setattr(cli.docker_api, "connect", lambda: None)
    return holder


def _result(code: int, stdout: bytes = b"", stderr: bytes = b"", dropped: int = 0) -> RunResult:
    return RunResult(stdout, stderr, dropped, 0, argv=("x",), returncode=code, duration_s=0.01, pid=1)


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (3, 3), (-9, 137)])
def test_cli_run_passes_the_exit_code_and_streams_through(fake_testbed: Any, capfdbinary: Any,
                                                          code: int, expected: int) -> None:
    fake_testbed["host"] = FakeHost(_result(code, b"o\x00ut", b"err"))
    assert cli.main(["--instance", "ci", "run", "server", "--", "ls", "-l", "--", "x y"]) == expected
    assert fake_testbed["host"].calls == [(["ls", "-l", "--", "x y"], cli.RUN_TIMEOUT_S)]
    assert (fake_testbed["instance"], fake_testbed["name"], fake_testbed["closed"]) == ("ci", "server", True)
    captured = capfdbinary.readouterr()
    assert captured.out == b"o\x00ut" and captured.err.startswith(b"err")


def test_cli_run_timeout_exits_124_and_truncation_is_said(fake_testbed: Any, capfd: Any) -> None:
    fake_testbed["host"] = FakeHost(ProcessTimeout("client", ["sleep", "9"], 1.0, b"so far", b""))
    assert cli.main(["run", "--timeout", "1", "client", "--", "sleep", "9"]) == 124
    assert "still running after 1 s" in capfd.readouterr().err
    fake_testbed["host"] = FakeHost(_result(0, b"tail", dropped=5))
    assert cli.main(["run", "client", "--", "yes"]) == 0
    assert "output truncated" in capfd.readouterr().err


def test_cli_run_without_a_command_or_with_a_bad_host_is_a_usage_error(fake_testbed: Any, capfd: Any) -> None:
    assert cli.main(["run", "client", "--"]) == 2
    assert "run needs a command" in capfd.readouterr().err
    with pytest.raises(SystemExit) as caught:
        cli.main(["run", "laptop", "--", "true"])
    assert caught.value.code == 2


def test_cli_shell_without_a_terminal_says_what_to_use(fake_testbed: Any, capfd: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    assert cli.main(["--instance", "ci", "shell", "client"]) == 2
    err = capfd.readouterr().err
    assert "needs a terminal" in err and "netbed --instance ci run client -- CMD" in err
    assert "instance" not in fake_testbed  # said before touching any testbed
