"""The pytest plugin's choice of hosts (--netbed-hosts / NETBED_HOSTS): a bad value is refused
naming it, and under network-namespace hosts a test marked needs_docker is skipped naming what
it needs, while unmarked tests run."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest

@pytest.mark.needs_docker("the control network")
def test_needs_the_control_network():
    pass

def test_needs_nothing():
    pass
"""


def test_needs_docker_is_skipped_naming_why_under_netns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--netbed-hosts", "netns", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs Docker (the control network)*--netbed-hosts netns*"])


def test_needs_docker_runs_with_docker_hosts(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETBED_HOSTS", raising=False)
    pytester.makepyfile(TESTS)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_bad_hosts_value_is_refused_naming_it(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETBED_HOSTS", "vagrant")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*NETBED_HOSTS='vagrant'*docker, netns*"])
