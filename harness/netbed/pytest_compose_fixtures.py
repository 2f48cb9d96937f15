"""pytest-docker's fixture names, as argument lists: what the netbed session starts, and how.

Override any of them in a conftest.py as with pytest-docker; the values are
argument lists, never shell strings:

  docker_compose_command       ["docker", "compose"]-like command (default: Compose v2, see compose.py)
  docker_compose_file          a path, or a list of paths (-f, in order; default: netbed's compose.yaml)
  docker_compose_project_name  the instance name (default: --netbed-instance, $NETBED_INSTANCE, "netbed")
  docker_setup                 compose argument lists run after the networks exist (default: up --wait);
                               [] starts nothing (the testbed must be up already)
  docker_cleanup               compose argument lists run at the end (default: down --volumes);
                               [] (or --keep-testbed) leaves the testbed running and unowned

The pytest plugin registers this module when pytest configures, after every
installed plugin, so these definitions win over pytest-docker's (whose values
are shell strings) when both are installed, while a conftest.py still
overrides them. ``docker_services`` is pytest-docker's own ``Services`` object, bound to the
netbed testbed and run without a shell.
"""

from __future__ import annotations

import os
import shlex

import pytest
from pytest_docker.plugin import Services

from .compose import COMPOSE_FILE, compose_command
from .testbed import DOWN_ARGS, Testbed, up_args
from .topology import DEFAULT_INSTANCE


@pytest.fixture(scope="session")
def docker_compose_command() -> list[str]:
    return compose_command()


@pytest.fixture(scope="session")
def docker_compose_file() -> str | list[str]:
    return str(COMPOSE_FILE)


def xdist_worker(config: pytest.Config) -> str | None:
    """The pytest-xdist worker id ("gw0", ...) of this process, or None outside xdist."""
    workerinput = getattr(config, "workerinput", None)
    return None if workerinput is None else str(workerinput["workerid"])


@pytest.fixture(scope="session")
def docker_compose_project_name(pytestconfig: pytest.Config) -> str:
    """The instance name. Under pytest-xdist every worker gets its own testbed, INSTANCE-gwN:
    one router per worker, so no worker overwrites another's impairments (a shared router
    would make the results depend on which tests happen to run at the same time)."""
    base = str(pytestconfig.getoption("--netbed-instance") or (os.environ.get("NETBED_INSTANCE") or DEFAULT_INSTANCE))
    worker = xdist_worker(pytestconfig)
    return base if worker is None else f"{base}-{worker}"


@pytest.fixture(scope="session")
def docker_setup() -> list[list[str]]:
    return [up_args(build=False)]


@pytest.fixture(scope="session")
def docker_cleanup(pytestconfig: pytest.Config) -> list[list[str]]:
    return [] if pytestconfig.getoption("--keep-testbed") else [list(DOWN_ARGS)]


class _ArgvComposeExecutor:
    """What pytest-docker's ``Services`` calls to run compose, but with argument lists.

    pytest-docker's own executor joins a shell string and runs it with ``shell=True``; this one
    splits the subcommand it is given (``"port server 7000"``, always our own or the user's
    literal) and runs it through the testbed's Compose, so no shell is involved.
    """

    def __init__(self, testbed: Testbed) -> None:
        self._testbed = testbed

    def execute(self, subcommand: str, **_ignored: object) -> bytes:
        return self._testbed.compose().run(shlex.split(subcommand)).encode()


@pytest.fixture(scope="session")
def docker_services(netbed_session: Testbed) -> Services:
    """pytest-docker's ``docker_services`` on the netbed testbed: ``port_for(service, port)``
    (e.g. an agent's published control port) and ``wait_until_responsive(check, timeout, pause)``.

    The testbed's lifecycle is netbed's (``netbed_session``); this only exposes pytest-docker's
    helpers for users whose tests already use them.
    """
    return Services(_ArgvComposeExecutor(netbed_session))
