"""Many netbed commands at once on one engine: one may remove a container while another lists.

Found while five testbeds were being created and removed on one machine: `netbed up` crashed
with a traceback in the reaper, because the docker SDK inspects every container it lists and
one had been removed in between (NotFound). The fake below behaves as the SDK's
ContainerCollection.list does: without ignore_removed, a container that vanished between the
list and its inspection raises NotFound.
"""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from netbed import cli, docker_api, reaper


class Gone(docker.errors.NotFound):
    def __init__(self) -> None:
        super().__init__("No such container: vanished")


class FakeContainer:
    def __init__(self, name: str, labels: dict[str, str]) -> None:
        self.name, self.labels, self.attrs = name, labels, {"Config": {"Labels": labels}}

    def remove(self, **_kw: Any) -> None:
        raise Gone()  # a concurrent `down` was faster


class FakeContainers:
    def __init__(self, survivors: list[FakeContainer]) -> None:
        self.survivors = survivors

    def list(self, all: bool = False, filters: Any = None, ignore_removed: bool = False) -> list[FakeContainer]:
        if not ignore_removed:
            raise Gone()  # the SDK's inspect of a container removed after the listing
        return list(self.survivors)


class Empty:
    def list(self, **_kw: Any) -> list[Any]:
        return []


class FakeClient:
    def __init__(self, survivors: list[FakeContainer]) -> None:
        self.containers = FakeContainers(survivors)
        self.networks = Empty()
        self.volumes = Empty()


LABELS = {docker_api.LABEL_TESTBED: "true", docker_api.LABEL_INSTANCE: "job-1",
          docker_api.LABEL_OWNER: "4194303@nohost:1"}


def test_listing_and_removing_tolerate_a_concurrent_removal() -> None:
    client: Any = FakeClient([FakeContainer("job-1-client-1", LABELS)])
    assert docker_api.leftovers(client, "job-1")["containers"] == ["job-1-client-1"]
    assert docker_api.remove_by_label(client, "job-1") == {"containers": [], "networks": [], "volumes": []}


def test_the_reaper_tolerates_a_concurrent_removal() -> None:
    client: Any = FakeClient([FakeContainer("job-1-client-1", LABELS)])
    assert reaper.reap_orphans(client, hostname="nohost") == []


def test_an_unexpected_engine_error_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def refuse() -> Any:
        raise docker.errors.APIError("500 Server Error: engine is shutting down")

    monkeypatch.setattr(docker_api, "connect", refuse)
    assert cli.main(["down"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("netbed: Docker engine error: ") and "Traceback" not in err
