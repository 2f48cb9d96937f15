"""Programs on the hosts (issue #7 part 2): Host.run / Host.spawn across the running testbed.

Every process runs through the host's agent in its own process group; these tests check,
from inside the hosts (pgrep through `run`), that a timeout, the end of a test and a closed
connection leave no process of the group behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from netbed.errors import CommandFailed, HostNotRunning, ProcessTimeout, RemoteOSError
from netbed.host import Host, Router
from netbed.testbed import Testbed

HERE = Path(__file__).resolve().parent


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll `check` until true or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def group_members(host: Host, pgid: int) -> str:
    """`pgrep -g PGID` on the host: the pids still in that process group ('' if none)."""
    result = host.run(["pgrep", "-g", str(pgid)], timeout=10)
    assert result.returncode in (0, 1), result.stderr_text
    return result.stdout_text.strip()


def matching(host: Host, pattern: str) -> str:
    result = host.run(["pgrep", "-f", pattern], timeout=10)
    assert result.returncode in (0, 1), result.stderr_text
    return result.stdout_text.strip()


def test_stdout_and_stderr_come_back_apart(client: Host) -> None:
    result = client.run(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"], timeout=10)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"to-out\n", b"to-err\n")
    assert result.text == "to-out\n" and not result.truncated


def test_timeout_returns_in_about_a_second_and_the_process_group_is_gone(client: Host) -> None:
    # The leader prints its pid (= its process group) and starts a second sleep in the group.
    script = "echo $$; sleep 8 & sleep 8"
    started = time.monotonic()
    with pytest.raises(ProcessTimeout) as caught:
        client.run(["sh", "-c", script], timeout=1)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.5, f"run with timeout 1 s took {elapsed:.2f} s"
    pgid = int(caught.value.stdout.split()[0])
    assert eventually(lambda: group_members(client, pgid) == ""), \
        f"process group {pgid} still has {group_members(client, pgid)}"


def test_check_raises_command_failed_with_the_stderr_tail(server: Host) -> None:
    with pytest.raises(CommandFailed) as caught:
        server.run(["ls", "/no/such/dir"], timeout=10, check=True)
    assert caught.value.returncode != 0
    assert "'ls', '/no/such/dir'" in str(caught.value) and "No such file or directory" in str(caught.value)


def test_a_missing_program_is_named_with_enoent(server: Host) -> None:
    with pytest.raises(RemoteOSError) as caught:
        server.run(["no-such-tool-on-the-host"], timeout=10)
    assert caught.value.errno_name == "ENOENT"
    assert "no-such-tool-on-the-host" in str(caught.value) and "server" in str(caught.value)


def test_odd_arguments_and_secret_env_pass_through_unchanged(client: Host) -> None:
    odd = ["$HOME", "a b", "; echo pwned", "`id`", "'\"", "*", "ünï"]
    secret = "s3cr3t $(id) ; 'x'"
    code = "import os, sys, json; print(json.dumps([sys.argv[1:], os.environ['SECRET']]))"
    result = client.run(["python3", "-c", code, *odd], env={"SECRET": secret}, timeout=10, check=True)
    assert json.loads(result.stdout) == [odd, secret]
    # The agent's token is not handed to the software under test.
    assert client.run(["sh", "-c", 'echo "${NETBED_AGENT_TOKEN-unset}"'], timeout=10).stdout == b"unset\n"


def test_exec_still_works_for_existing_callers(server: Host) -> None:
    code, output = server.exec(["sh", "-c", "echo a; echo b >&2; exit 2"])
    assert code == 2 and output == "a\nb\n"


def test_curl_from_the_client_reaches_a_server_spawned_on_the_server(client: Host, server: Host,
                                                                     router: Router) -> None:
    port = 8000 + uuid.uuid4().int % 1000
    httpd = server.spawn(["python3", "-u", "-m", "http.server", str(port), "--bind", server.ipv4,
                          "--directory", "/etc"])
    with httpd:
        assert eventually(lambda: b"Serving HTTP" in httpd.output().stdout, 10), httpd.output().tail()
        assert httpd.returncode is None
        before = int(router.counters()["ipv4_forwarded"])
        page = client.run(["curl", "-sS", "--max-time", "5", f"http://{server.ipv4}:{port}/hostname"],
                          timeout=10, check=True)
        assert page.stdout.strip() == server.run(["cat", "/etc/hostname"], timeout=10).stdout.strip()
        assert int(router.counters()["ipv4_forwarded"]) - before >= 5  # it crossed the router
        # The access log (stderr) names the client's data-plane address.
        assert eventually(lambda: f"{client.ipv4} - -".encode() in httpd.output().stderr), httpd.output().tail()
    assert httpd.returncode == -9
    assert matching(server, f"http.server {port}") == ""


def test_nc_carries_bytes_across_the_router(client: Host, server: Host) -> None:
    for host in (client, server):
        if host.run(["sh", "-c", "command -v nc"], timeout=10).returncode != 0:
            pytest.skip(f"nc (netcat) is not installed on the {host.name} host")
    port = 9000 + uuid.uuid4().int % 1000
    with server.spawn(["nc", "-l", server.ipv4, str(port)]) as listener:
        assert eventually(lambda: str(port) in server.run(["ss", "-Hltn"], timeout=10).stdout_text, 10)
        client.run(["nc", "-N", "-w", "5", server.ipv4, str(port)], input=b"over the router\n", timeout=10,
                   check=True)
        assert listener.wait(10) == 0
        assert listener.output().stdout == b"over the router\n"


@pytest.mark.needs_docker("a second harness connected to the same running testbed")
def test_a_closed_connection_kills_what_it_spawned(testbed: Testbed, client: Host) -> None:
    marker = f"netbed-conn-{uuid.uuid4().hex[:8]}"
    other = Testbed(testbed.instance)
    try:
        # `; :` keeps sh (and the marker in its command line) alive beside its sleep.
        proc = other.client.spawn(["sh", "-c", "sleep 300; :", marker])
        assert matching(client, marker) == str(proc.pid)
        assert len(group_members(client, proc.pid).split()) == 2
    finally:
        other.close_connections()  # what a killed session's closed sockets do
    assert eventually(lambda: group_members(client, proc.pid) == "")


INNER_TESTS = '''
import time

def test_spawns_and_fails(server):
    proc = server.spawn(["sh", "-c", "echo hello-from-MARKER; echo warning-MARKER >&2; sleep 300; :", "MARKER"])
    assert server.run(["pgrep", "-f", "MARKER"], timeout=10).stdout.strip() == str(proc.pid).encode()
    deadline = time.monotonic() + 10
    while b"hello" not in proc.output().stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert False, "deliberate failure"

def test_nothing_is_left_by_the_previous_test(server):
    assert server.run(["pgrep", "-f", "MARKER"], timeout=10).stdout == b""
'''


@pytest.mark.needs_docker("an inner pytest session that reuses this session's running testbed")
def test_processes_are_killed_when_the_test_ends_and_reported_when_it_fails(testbed: Testbed, server: Host,
                                                                              tmp_path: Path) -> None:
    marker = f"netbed-end-{uuid.uuid4().hex[:8]}"
    test_file = tmp_path / "test_inner_processes.py"
    test_file.write_text(INNER_TESTS.replace("MARKER", marker))
    env = {k: v for k, v in os.environ.items() if k != "NETBED_CLIENT_NET4"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--netbed-instance",
                           testbed.instance, str(test_file)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in out, out[-3000:]
    # The failing test's report shows what the spawned process printed, both streams.
    assert "netbed process on server" in out and f"hello-from-{marker}" in out and f"warning-{marker}" in out
    assert matching(server, marker) == ""
    # ... and the run report links its whole output, both streams, as an artifact of that test.
    tests = json.loads((tmp_path / "reports" / "index.json").read_text())["tests"]
    failed = next(t for t in tests if t["outcome"] == "failed")
    (log,) = [path for name, path in failed["artifacts"].items() if name.startswith("server pid")]
    text = (tmp_path / "reports" / log).read_text()
    assert f"hello-from-{marker}" in text and f"warning-{marker}" in text


@pytest.mark.needs_docker("the netbed CLI finds a running testbed through Docker")
def test_netbed_run_passes_the_exit_code_through(testbed: Testbed) -> None:
    netbed = shutil.which("netbed", path=str(Path(sys.executable).parent)) or "netbed"
    proc = subprocess.run([netbed, "--instance", testbed.instance, "run", "server", "--",
                           "sh", "-c", "echo out; echo err >&2; exit 5"], capture_output=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, b"out\n", b"err\n")


@pytest.mark.needs_docker("a container that is stopped and started")
def test_run_on_a_stopped_host_names_the_host_and_the_instance(testbed: Testbed, server: Host) -> None:
    container = testbed.containers()["server"]
    container.stop(timeout=1)
    try:
        with pytest.raises(HostNotRunning) as caught:
            server.run(["true"], timeout=5)
        message = str(caught.value)
        assert "server" in message and f"'{testbed.instance}'" in message and "exited" in message
    finally:
        container.start()
        testbed.wait_ready()
    assert server.run(["true"], timeout=10).returncode == 0
