"""pytest plugin: a session testbed built on pytest-docker, per-test cleanup.

Fixtures
  testbed          the Testbed, cleaned after each test (sockets closed, router reset)
  client, router, server   its hosts
  netbed_session   the session-scoped Testbed (no per-test cleanup)

pytest-docker runs `compose up` and `compose down` for us; we override its
fixtures (compose command, file, project name, setup and cleanup commands).
A testbed that was already running (`make up`) is reused and left running;
one this session started is removed at the end unless --keep-testbed.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from pytest_docker.plugin import get_docker_services

from . import docker_api, images
from .compose import COMPOSE_FILE, compose_command
from .host import Host, Router
from .profiles import profile
from .testbed import DOWN_ARGS, Testbed, up_args
from .topology import DEFAULT_INSTANCE


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netbed", "netbed testbed")
    group.addoption("--keep-testbed", action="store_true", default=False,
                    help="leave a testbed this session started running at the end")
    group.addoption("--netbed-instance", default=None,
                    help="testbed instance name (default: $NETBED_INSTANCE or 'netbed')")


def pytest_report_header(config: pytest.Config) -> str:
    instance = config.getoption("--netbed-instance") or os.environ.get("NETBED_INSTANCE", DEFAULT_INSTANCE)
    keep = " (kept at the end)" if config.getoption("--keep-testbed") else ""
    return f"netbed: testbed instance '{instance}'{keep}"


@pytest.fixture(scope="session")
def netbed_testbed_object(pytestconfig: pytest.Config) -> Testbed:
    return Testbed(pytestconfig.getoption("--netbed-instance"), keep=pytestconfig.getoption("--keep-testbed"))


@pytest.fixture(scope="session")
def netbed_reused(netbed_testbed_object: Testbed) -> bool:
    """True when the testbed was already up before this session (it stays up)."""
    return netbed_testbed_object.is_running()


# -- pytest-docker's fixtures, overridden ---------------------------------------
@pytest.fixture(scope="session")
def docker_compose_command(netbed_testbed_object: Testbed) -> str:
    env = netbed_testbed_object.topology.compose_env()
    base, _why = images.choose_base_image(netbed_testbed_object.docker)
    env["NETBED_BASE_IMAGE"] = base
    assignments = [f"{k}={v}" for k, v in sorted(env.items())]
    return shlex.join(["env", *assignments, *compose_command()])


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name(netbed_testbed_object: Testbed) -> str:
    return netbed_testbed_object.instance


@pytest.fixture(scope="session")
def docker_setup(netbed_reused: bool) -> list[str]:
    if netbed_reused:
        return []
    return [shlex.join(up_args(build=True))]


@pytest.fixture(scope="session")
def docker_cleanup(netbed_reused: bool, pytestconfig: pytest.Config) -> list[str]:
    if netbed_reused or pytestconfig.getoption("--keep-testbed"):
        return []
    return [shlex.join(DOWN_ARGS)]


# -- our fixtures -------------------------------------------------------------
@pytest.fixture(scope="session")
def netbed_session(
    netbed_testbed_object: Testbed,
    netbed_reused: bool,
    docker_compose_command: str,
    docker_compose_file: str,
    docker_compose_project_name: str,
    docker_setup: list[str],
    docker_cleanup: list[str],
    pytestconfig: pytest.Config,
) -> Iterator[Testbed]:
    tb = netbed_testbed_object
    tb.started_here = not netbed_reused
    remove = tb.started_here and not pytestconfig.getoption("--keep-testbed")
    try:
        with get_docker_services(docker_compose_command, docker_compose_file, docker_compose_project_name,
                                 docker_setup, docker_cleanup):
            tb.wait_ready()
            try:
                yield tb
            finally:
                tb.close_connections()
    finally:
        # pytest-docker does not clean up after a failed `up`, and compose
        # cannot see containers of a crashed earlier run: remove by label.
        if remove:
            docker_api.remove_by_label(tb.docker, tb.instance)


def reset_testbed(tb: Testbed) -> None:
    """Return every host to a known state: no sockets, pristine router."""
    for host in tb.hosts.values():
        host.close_all_sockets()
    tb.router.reset()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "netem(netem='', *, profile=None, direction='both', match=None): impair the router for this test "
        "(tc netem syntax, or a named profile); the router is reset afterwards",
    )


def _marker_netem(request: pytest.FixtureRequest) -> tuple[str, str, str | None] | None:
    marker = request.node.get_closest_marker("netem")
    if marker is None:
        return None
    text = marker.args[0] if marker.args else marker.kwargs.get("netem", "")
    if marker.kwargs.get("profile"):
        text = profile(marker.kwargs["profile"])
    return text, marker.kwargs.get("direction", "both"), marker.kwargs.get("match")


@pytest.fixture
def testbed(netbed_session: Testbed, request: pytest.FixtureRequest) -> Iterator[Testbed]:
    """The running testbed; after the test, sockets are closed and the router reset.

    A `@pytest.mark.netem(...)` marker is applied before the test starts.
    """
    try:
        wanted = _marker_netem(request)
        if wanted is not None:
            text, direction, match = wanted
            netbed_session.router.impair(text, direction=direction, match=match)
        yield netbed_session
    finally:
        reset_testbed(netbed_session)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Attach the router's impairment counters to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    tb = getattr(item, "funcargs", {}).get("testbed")
    if isinstance(tb, Testbed):
        try:
            status = tb.router.impair_status()
        except Exception as exc:  # noqa: BLE001 - reporting must not mask the failure
            status = {"error": str(exc)}
        report.sections.append(("netbed router impairment", json.dumps(status, indent=2)))


@pytest.fixture
def client(testbed: Testbed) -> Host:
    return testbed.client


@pytest.fixture
def server(testbed: Testbed) -> Host:
    return testbed.server


@pytest.fixture
def router(testbed: Testbed) -> Router:
    return testbed.router


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
