"""pytest plugin: one session testbed, per-test cleanup.

Fixtures
  testbed          the Testbed, cleaned after each test (sockets closed, router reset)
  client, router, server   its hosts
  netbed_session   the session-scoped Testbed (no per-test cleanup)
  docker_compose_command, docker_compose_file, docker_compose_project_name,
  docker_setup, docker_cleanup
                   pytest-docker's names for what to start and how, as argument
                   lists (see pytest_compose_fixtures.py); override them in a conftest

The session fixture is `with Testbed(...) as tb: yield tb`: a testbed that was
already running (`make up`) is reused and left running; one this session
started carries the session as its owner (`io.netbed.owner`) and is removed at
the end, also after a failed start, on Ctrl-C and on SIGTERM (how CI cancels);
if the session is killed outright, its watcher (or at the latest the next
netbed command or session) removes it (reaper.py).  --keep-testbed leaves it running with no owner.

--netbed-capture=failed|all|off: each test's packets at the router, kept for failing tests
(or all) under reports/captures with the engine's decision log (capture_plugin.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from netbed_core.netem import Netem

from . import (
    attach,
    capture_plugin,
    netns_testbed,
    owner,
    pytest_compose_fixtures,
    reaper,
    report,
    run_report,
    scenario_files,
    test_record,
    timeline,
)
from . import scenario as scenarios
from .host import Host, Router
from .netns_testbed import NetnsTestbed
from .profiles import resolve
from .testbed import Testbed
from .topology import DEFAULT_INSTANCE

_COMPOSE_FIXTURES_PLUGIN = "netbed.compose_fixtures"
#: The session testbed, whatever its hosts are (the suites use what both offer).
AnyTestbed = Testbed | NetnsTestbed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netbed", "netbed testbed")
    group.addoption("--keep-testbed", action="store_true", default=False,
                    help="leave a testbed this session started running at the end")
    group.addoption("--netbed-instance", default=None,
                    help="testbed instance name (default: $NETBED_INSTANCE or 'netbed')")
    run_report.add_options(group)
    capture_plugin.addoption(group)
    group.addoption("--netbed-hosts", default=None, choices=HOSTS_KINDS,
                    help="what the hosts are: docker (containers, the default) or netns (network namespaces "
                         "on this machine, no Docker, needs root); default: $NETBED_HOSTS or docker")


#: What the testbed's hosts can be: Docker containers (Testbed) or network namespaces (NetnsTestbed).
HOSTS_KINDS = ("docker", "netns")


def hosts_kind(config: pytest.Config) -> str:
    """docker or netns: --netbed-hosts, else $NETBED_HOSTS, else docker."""
    kind = str(config.getoption("--netbed-hosts") or os.environ.get("NETBED_HOSTS") or "docker")
    if kind not in HOSTS_KINDS:
        raise pytest.UsageError(f"netbed: NETBED_HOSTS={kind!r}: use one of {', '.join(HOSTS_KINDS)}")
    return kind


def pytest_report_header(config: pytest.Config) -> str:
    instance = config.getoption("--netbed-instance") or (os.environ.get("NETBED_INSTANCE") or DEFAULT_INSTANCE)
    keep = " (kept at the end)" if config.getoption("--keep-testbed") else ""
    if hosts_kind(config) == "netns":
        return f"netbed: testbed instance '{instance}', hosts are network namespaces (no Docker)"
    return f"netbed: testbed instance '{instance}'{keep}"


def _argument_lists(name: str, value: object) -> list[list[str]]:
    """A docker_setup/docker_cleanup value, checked: a list of argument lists, never shell strings."""
    if isinstance(value, str) or not isinstance(value, Sequence) or any(
        isinstance(args, str) or not isinstance(args, Sequence) or not all(isinstance(a, str) for a in args)
        for args in value
    ):
        raise pytest.UsageError(
            f"netbed: the {name} fixture returned {value!r}; netbed takes compose argument lists such as "
            f"[['up', '--detach', '--wait']], not shell strings (is pytest-docker's fixture shadowing netbed's?)"
        )
    return [list(args) for args in value]


@pytest.fixture(scope="session")
def netbed_session(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Iterator[AnyTestbed]:
    """The session's testbed: Docker containers, or network namespaces (--netbed-hosts netns)."""
    if hosts_kind(pytestconfig) == "netns":
        why = netns_testbed.why_unavailable()
        if why:
            pytest.skip(f"--netbed-hosts netns: {why}")
        with NetnsTestbed(request.getfixturevalue("docker_compose_project_name")) as ntb:
            ntb.router.reset()
            yield ntb
        return
    yield from _docker_session(
        pytestconfig, request.getfixturevalue("docker_compose_command"),
        request.getfixturevalue("docker_compose_file"), request.getfixturevalue("docker_compose_project_name"),
        request.getfixturevalue("docker_setup"), request.getfixturevalue("docker_cleanup"))


def _docker_session(
    pytestconfig: pytest.Config,
    docker_compose_command: Sequence[str],
    docker_compose_file: str | Sequence[str],
    docker_compose_project_name: str,
    docker_setup: Sequence[Sequence[str]],
    docker_cleanup: Sequence[Sequence[str]],
) -> Iterator[Testbed]:
    files = [docker_compose_file] if isinstance(docker_compose_file, str) else list(docker_compose_file)
    command = _argument_lists("docker_compose_command", [docker_compose_command])[0]
    cleanup = _argument_lists("docker_cleanup", docker_cleanup)
    keep = bool(pytestconfig.getoption("--keep-testbed")) or not cleanup
    tb = Testbed(
        docker_compose_project_name,
        keep=keep,
        # A kept testbed outlives the session on purpose: it has no owner to outlive.
        owner="" if keep else owner.current().label,
        compose_files=[Path(f) for f in files],
        compose_command=command or None,
        setup=_argument_lists("docker_setup", docker_setup),
        cleanup=cleanup,
    )
    reaper.reap_orphans(tb.docker)
    if tb.owner and not tb.is_running():
        reaper.start_watcher(tb.owner, tb.instance)
    with tb:
        tb.router.reset()  # whatever an earlier session or user left impaired
        try:
            yield tb
        finally:
            capture_plugin.session_end(pytestconfig)


def reset_testbed(tb: AnyTestbed) -> None:
    """Return every host to a known state: no processes, no sockets, pristine router."""
    for host in tb.hosts.values():
        host.kill_processes()  # by process group: whatever the test spawned is gone
        host.stop_attachments()  # the containers the test attached (attach.py)
        host.close_all_sockets()
    tb.router.reset()


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (how CI cancels a job) ends the session as Ctrl-C does: teardown runs."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not interrupt the cleanup
    raise KeyboardInterrupt


_previous_sigterm: Any = None


def pytest_configure(config: pytest.Config) -> None:
    global _previous_sigterm
    if not config.pluginmanager.has_plugin(_COMPOSE_FIXTURES_PLUGIN):
        config.pluginmanager.register(pytest_compose_fixtures, _COMPOSE_FIXTURES_PLUGIN)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        _previous_sigterm = signal.signal(signal.SIGTERM, _terminate)
    config.addinivalue_line(
        "markers",
        "needs_docker(what): the test needs what only the Docker testbed has (containers, images, restarts, "
        "compose); skipped, naming `what`, when the hosts are network namespaces (--netbed-hosts netns)",
    )
    config.addinivalue_line(
        "markers",
        "netem(netem='', *, profile=None, direction='both', match=None): impair the router for this test "
        "(tc netem syntax, a named profile, or a profile that the text overrides, e.g. a seed); "
        "the router is reset afterwards",
    )
    report.pytest_configure(config)  # the conformance collector: its table is part of the run report
    run_report.configure(config)
    config.addinivalue_line(
        "markers",
        "netbed_scenario(name_or_file, *, repeat=None): run a named scenario (profiles/scenarios.yaml) or "
        "a scenario file on the router for this test; the per-test reset stops it",
    )
    capture_plugin.configure(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    capture_plugin.sessionstart(session)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _previous_sigterm
    if _previous_sigterm is not None:
        signal.signal(signal.SIGTERM, _previous_sigterm)
        _previous_sigterm = None


def _marker_netem(request: pytest.FixtureRequest) -> tuple[Netem, str, str | None] | None:
    """The marker's impairment: its text, its profile, or the profile overridden by the text
    (`@pytest.mark.netem("seed 7", profile="wan")` is wan, seeded)."""
    marker = request.node.get_closest_marker("netem")
    if marker is None:
        return None
    text = marker.args[0] if marker.args else marker.kwargs.get("netem", "")
    netem = resolve(text, marker.kwargs.get("profile"))
    return netem, marker.kwargs.get("direction", "both"), marker.kwargs.get("match")


def _start_marker_scenario(request: pytest.FixtureRequest, router: Router) -> None:
    """`@pytest.mark.netbed_scenario("flaky-wifi")` (or a FILE.yaml, optionally `repeat=N`):
    started before the test; the per-test reset stops it."""
    marker = request.node.get_closest_marker("netbed_scenario")
    if marker is None:
        return
    if len(marker.args) != 1 or set(marker.kwargs) - {"repeat"}:
        raise pytest.UsageError("netbed_scenario takes one scenario name or file, and optionally repeat=N")
    named = scenario_files.resolve(str(marker.args[0]))
    scenario = named.scenario
    if marker.kwargs.get("repeat") is not None:
        scenario = scenarios.parse_scenario(scenario.to_wire()["steps"], marker.kwargs["repeat"])
    router.scenario(scenario, name=named.name or str(marker.args[0]))


@pytest.fixture
def testbed(netbed_session: AnyTestbed, request: pytest.FixtureRequest) -> Iterator[AnyTestbed]:
    """The running testbed; after the test, sockets are closed and the router reset.

    A `@pytest.mark.netem(...)` marker is applied before the test starts, after the
    session's capture at the router has noted the test's start (--netbed-capture, capture_plugin.py).
    """
    try:
        _start_timeline(netbed_session)
        capture_plugin.begin(netbed_session.router, request.node)
        wanted = _marker_netem(request)
        if wanted is not None:
            text, direction, match = wanted
            netbed_session.router.impair(text, direction=direction, match=match)
        _start_marker_scenario(request, netbed_session.router)
        yield netbed_session
    finally:
        left = leftovers(netbed_session)
        reset_testbed(netbed_session)
        if left:
            _report_leftovers(left)


class LeftoverWarning(UserWarning):
    """A process or attached container a test started was still running when the test ended;
    netbed removed it (the per-test reset), and says so rather than hiding a leak."""


def leftovers(tb: AnyTestbed) -> list[str]:
    """What the test started and left running: spawned processes still alive, attached
    containers not stopped. Each as one line naming the host."""
    found: list[str] = []
    for host in tb.hosts.values():
        for proc in host.processes:
            try:
                running = proc.poll() is None
            except Exception:  # noqa: BLE001 - the report must not break the cleanup
                running = False
            if running:
                found.append(f"{host.name}: process pid {proc.pid} {proc.argv!r}")
        found += [f"{host.name}: attached container {a.name} ({a.image})" for a in host.attachments]
    return found


def _report_leftovers(left: list[str]) -> None:
    message = "netbed removed what the test left running: " + "; ".join(left)
    record = test_record.current()
    if record is not None:
        record.notes.append(message)
    warnings.warn(LeftoverWarning(message), stacklevel=2)


def _start_timeline(tb: AnyTestbed) -> None:
    """Note where the router's timeline stands as the test starts (test_record.py)."""
    record = test_record.current()
    if record is None:
        return
    try:
        record.start_events = tb.router.events(since=timeline.NO_EVENTS)
    except Exception as exc:  # noqa: BLE001 - the report must not fail the test
        record.notes.append(f"router timeline not read at the start: {exc}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """After the test body: the network during the test into its record and its JUnit
    properties; for a failing test, a short table of what was active (timeline.py)."""
    outcome = yield
    report = outcome.get_result()
    record = test_record.current()
    tb = getattr(item, "funcargs", {}).get("testbed")
    if report.when != "call" or record is None or record.start_events is None or not isinstance(tb, AnyTestbed):
        return
    try:
        record.network = timeline.collect(tb.router, record.start_events)
    except Exception as exc:  # noqa: BLE001 - reporting must not mask the failure
        record.notes.append(f"router timeline not read at the end: {exc}")
        return
    item.user_properties.extend(timeline.junit_properties(record.network))
    if report.failed:
        report.sections.append(("netbed router impairment", timeline.render_failure(record.network, time.time())))


@pytest.hookimpl(hookwrapper=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_capture(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Keep the test's capture when it failed (or with --netbed-capture=all); name it in the report."""
    outcome = yield
    capture_plugin.makereport(item, outcome.get_result())


#: Lines of each stream a failing test's report shows per spawned process.
REPORT_PROCESS_LINES = 20


@pytest.hookimpl(hookwrapper=True, specname="pytest_runtest_makereport")
def pytest_runtest_makereport_processes(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Attach the last lines each process the test spawned printed to a failing test's report.

    Runs before the per-test reset kills them (that is the teardown phase).
    """
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    tb = getattr(item, "funcargs", {}).get("testbed")
    if not isinstance(tb, AnyTestbed):
        return
    try:
        hosts = list(tb.hosts.values())
    except Exception:  # noqa: BLE001 - reporting must not mask the failure
        return
    for host in hosts:
        for proc in host.processes:
            try:
                output = proc.output()
                text = output.tail(REPORT_PROCESS_LINES)
                state = "running" if proc.returncode is None else f"exit {proc.returncode}"
                _keep_process_log(host.name, proc.pid, output.stdout, output.stderr)
            except Exception as exc:  # noqa: BLE001 - reporting must not mask the failure
                text, state = str(exc), "unknown"
            report.sections.append((f"netbed process on {host.name}: {proc.argv!r} pid {proc.pid} ({state})", text))
        sections = attach.report_sections(host.attachments)
        report.sections.extend(sections)
        for attachment in host.attachments:
            try:
                whole = attachment.logs()
            except Exception as exc:  # noqa: BLE001 - reporting must not mask the failure
                whole = f"logs not available: {exc}"
            _keep_log(f"{host.name}-{attachment.name}.log", f"{host.name} attachment {attachment.name} log",
                      whole.encode(errors="replace"))


def _keep_process_log(host: str, pid: int, stdout: bytes, stderr: bytes) -> None:
    """A failing test's process output, whole (as far as kept), as an artifact of the run report."""
    _keep_log(f"{host}-pid{pid}.log", f"{host} pid {pid} output", b"== stdout\n" + stdout + b"\n== stderr\n" + stderr)


def _keep_log(filename: str, label: str, data: bytes) -> None:
    """`data` as an artifact of the current test in the run report (a note if it cannot be written)."""
    path = test_record.artifact_path(filename)
    if path is None:
        return
    try:
        path.write_bytes(data)
    except OSError as exc:
        record = test_record.current()
        if record is not None:
            record.notes.append(f"{label} not written: {exc}")
        return
    test_record.add_artifact(label, path)


@pytest.fixture
def client(testbed: AnyTestbed) -> Host:
    return testbed.client


@pytest.fixture
def server(testbed: AnyTestbed) -> Host:
    return testbed.server


@pytest.fixture
def router(testbed: AnyTestbed) -> Router:
    return testbed.router


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    netns = hosts_kind(config) == "netns"
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        marker = item.get_closest_marker("needs_docker")
        if netns and marker is not None:
            what = marker.args[0] if marker.args else "Docker"
            item.add_marker(pytest.mark.skip(reason=f"needs Docker ({what}); the hosts are network namespaces "
                                                    "(--netbed-hosts netns)"))
