"""Harness error mapping and CLI behaviour without Docker (the SDK is faked)."""

from __future__ import annotations

import errno

import pytest

from netbed import cli, docker_api
from netbed.agent import error_from_reply
from netbed.errors import AgentError, DockerUnavailable, RemoteOSError, RemoteTimeout


def test_os_errors_become_oserrors_with_errno() -> None:
    err = error_from_reply("client", "connect", {"kind": "os_error", "message": "connect: Connection refused",
                                                 "errno": 111, "errno_name": "ECONNREFUSED"})
    assert isinstance(err, RemoteOSError) and isinstance(err, OSError)
    assert err.errno == errno.ECONNREFUSED
    assert str(err) == "[Errno 111] client: connect: Connection refused"


def test_timeouts_become_timeout_errors() -> None:
    err = error_from_reply("server", "recv", {"kind": "timeout", "message": "recv: timed out after 1 s"})
    assert isinstance(err, RemoteTimeout) and isinstance(err, TimeoutError)


def test_other_errors_keep_their_kind() -> None:
    err = error_from_reply("router", "x", {"kind": "bad_request", "message": "x: missing argument 'fd'"})
    assert type(err) is AgentError and err.kind == "bad_request"
    assert str(err) == "router: x: missing argument 'fd'"


def test_cli_reports_docker_down_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def no_docker() -> None:
        raise DockerUnavailable("cannot reach the Docker engine (boom). Start Docker")

    monkeypatch.setattr(docker_api, "connect", no_docker)
    assert cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("netbed: cannot reach the Docker engine")


class FakeResource:
    def __init__(self, name: str) -> None:
        self.name = name
        self.removed = False

    def remove(self, **_kw: object) -> None:
        self.removed = True


class FakeCollection:
    def __init__(self, items: list[FakeResource]) -> None:
        self.items = items
        self.filters: list[object] = []

    def list(self, all: bool = False, filters: object = None, ignore_removed: bool = False) -> list[FakeResource]:
        self.filters.append(filters)
        return [i for i in self.items if not i.removed]


class FakeDocker:
    def __init__(self) -> None:
        self.containers = FakeCollection([FakeResource("tb-client-1")])
        self.networks = FakeCollection([FakeResource("tb_clientnet")])
        self.volumes = FakeCollection([FakeResource("tb_unixsock")])


def test_remove_by_label_filters_on_the_instance_label() -> None:
    fake = FakeDocker()
    removed = docker_api.remove_by_label(fake, "tb")  # type: ignore[arg-type]
    assert removed["containers"] == ["tb-client-1"]
    assert removed["networks"] == ["tb_clientnet"] and removed["volumes"] == ["tb_unixsock"]
    assert fake.containers.filters[0] == {"label": ["io.netbed.testbed=true", "io.netbed.instance=tb"]}
    assert docker_api.leftovers(fake, "tb") == {"containers": [], "networks": [], "volumes": []}  # type: ignore[arg-type]
