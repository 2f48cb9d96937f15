"""host.attach's checks before anything is created, and `--attach` specs (fake Docker SDK)."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from netbed import attach, attach_spec
from netbed.errors import AttachError, HostNotRunning, ImageNotLocal


class FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present
        self.asked: list[str] = []

    def get(self, name: str) -> object:
        self.asked.append(name)
        if name not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return object()

    def pull(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("netbed must never pull")


class FakeContainers:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create(self, image: str, command: object = None, **kwargs: Any) -> object:
        self.created.append({"image": image, "command": command, **kwargs})
        raise AssertionError("stop here: the test checks what create was given")

    def run(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("containers.run pulls a missing image; attach must not use it")


class FakeClient:
    def __init__(self, present: set[str]) -> None:
        self.images = FakeImages(present)
        self.containers = FakeContainers()


class FakeHostContainer:
    def __init__(self, client: FakeClient, status: str) -> None:
        self.client = client
        self.status = status
        self.id = "c0ffee"
        self.name = "ut-server-1"

    def reload(self) -> None:
        pass


class FakeHost:
    name = "server"
    instance = "ut"

    def __init__(self, status: str = "running", present: set[str] | None = None) -> None:
        self.client = FakeClient(present or set())
        self.container = FakeHostContainer(self.client, status)


def test_a_host_that_is_not_running_is_named_with_its_instance() -> None:
    host = FakeHost(status="exited", present={"app:1"})
    with pytest.raises(HostNotRunning) as caught:
        attach.start(host, "app:1")  # type: ignore[arg-type]
    assert "server" in str(caught.value) and "'ut'" in str(caught.value) and "exited" in str(caught.value)
    assert host.client.containers.created == []


def test_a_missing_image_is_one_line_and_nothing_is_created_or_pulled() -> None:
    host = FakeHost()
    with pytest.raises(ImageNotLocal) as caught:
        attach.start(host, "myorg/app:2")  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message and "'myorg/app:2'" in message and "build it" in message and "load it" in message
    assert host.client.images.asked == ["myorg/app:2"] and host.client.containers.created == []


def test_the_container_shares_the_hosts_namespace_and_carries_the_labels() -> None:
    host = FakeHost(present={"app:1"})
    with pytest.raises(AssertionError, match="stop here"):
        attach.start(host, "app:1", ["serve", "--port", "80"], env={"TOKEN": "a b'$c"}, name="web",  # type: ignore[arg-type]
                     owner="1@h:2")
    (created,) = host.client.containers.created
    assert created["network_mode"] == "container:c0ffee"
    assert created["command"] == ["serve", "--port", "80"]
    assert created["environment"] == {"TOKEN": "a b'$c"}, "passed through unchanged"
    assert created["name"] == "ut-server-web"
    assert created["labels"] == {"io.netbed.testbed": "true", "io.netbed.instance": "ut", "io.netbed.owner": "1@h:2",
                                 "io.netbed.attachment": "server"}


@pytest.mark.parametrize("command", ["python3 -m http.server", 42, ["ok", 3]])
def test_a_command_must_be_an_argument_list(command: object) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        attach.start(FakeHost(present={"app:1"}), "app:1", command)  # type: ignore[arg-type]


def test_a_bad_name_is_refused() -> None:
    with pytest.raises(AttachError, match="bad attachment name"):
        attach.start(FakeHost(present={"app:1"}), "app:1", name="../x")  # type: ignore[arg-type]


# -- netbed up --attach HOST=IMAGE[:CMD] ----------------------------------------
def test_spec_with_image_only() -> None:
    assert attach_spec.parse("server=app", {"app"}.__contains__) == attach_spec.AttachSpec("server", "app", None)


def test_spec_tag_and_command_are_told_apart_by_the_local_images() -> None:
    local = {"app:1", "localhost:5000/app:2"}.__contains__
    assert attach_spec.parse("server=app:1:python3 -m http.server 8080", local) == \
        attach_spec.AttachSpec("server", "app:1", ("python3", "-m", "http.server", "8080"))
    assert attach_spec.parse("client=localhost:5000/app:2", local).image == "localhost:5000/app:2"
    assert attach_spec.parse("client=app:1:sh -c 'echo a:b'", local).command == ("sh", "-c", "echo a:b")
    assert attach_spec.parse("client=app:python3 x.py", {"app"}.__contains__) == \
        attach_spec.AttachSpec("client", "app", ("python3", "x.py"))


@pytest.mark.parametrize("text", ["server", "nowhere=app", "server=", "=app"])
def test_spec_without_a_host_or_image_names_the_format(text: str) -> None:
    with pytest.raises(AttachError, match="expected HOST=IMAGE"):
        attach_spec.parse(text, lambda ref: True)


def test_spec_of_a_missing_image_is_not_pulled_but_named() -> None:
    with pytest.raises(ImageNotLocal, match="'ghost:1'.*never pulls"):
        attach_spec.parse("server=ghost:1", lambda ref: False)


def test_spec_name_is_stable_per_image() -> None:
    assert attach_spec.AttachSpec("server", "myorg/app:1", None).name == "myorg-app-1"


def test_down_and_clean_remove_attachments_before_the_hosts_they_share() -> None:
    from netbed import docker_api

    removed: list[str] = []

    class Container:
        def __init__(self, name: str, labels: dict[str, str]) -> None:
            self.name, self.labels = name, labels

        def remove(self, force: bool = False, v: bool = False) -> None:
            removed.append(self.name)

    class Collection:
        def __init__(self, items: list[Any]) -> None:
            self.items = items

        def list(self, **kwargs: Any) -> list[Any]:
            return self.items

    host = {"io.netbed.testbed": "true", "io.netbed.instance": "ut"}
    fake = type("FakeDocker", (), {})()
    fake.containers = Collection([Container("ut-server-1", host),
                                  Container("ut-server-web", {**host, attach.LABEL_ATTACHMENT: "server"}),
                                  Container("ut-client-1", host)])
    fake.networks = fake.volumes = Collection([])
    docker_api.remove_by_label(fake, "ut")
    assert removed == ["ut-server-web", "ut-server-1", "ut-client-1"]
