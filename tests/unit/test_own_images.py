"""`netbed clean --images` removes only the images netbed built, never one built FROM them
(issue: an image FROM netbed/base:bookworm inherited io.netbed.image=true and was deleted)."""

from __future__ import annotations

from netbed import own_images
from netbed.own_images import LABEL_IMAGE


class Image:
    """What the Docker SDK's Image offers own_images: id, tags, labels, attrs["RootFS"]."""

    def __init__(self, image_id: str, tags: list[str], own: str, layers: tuple[str, ...]) -> None:
        self.id = image_id
        self.tags = tags
        self.labels = {"io.netbed.testbed": "true", LABEL_IMAGE: own}
        self.attrs = {"RootFS": {"Layers": list(layers)}}


BASE = Image("base", ["netbed/base:bookworm"], "netbed/base", ("b1",))
SERVER = Image("server", ["netbed/server:latest", "netbed/server:ci"], "netbed/server", ("b1", "s1"))


def selected(*images: Image) -> list[str]:
    return [image.id for image in own_images.select(list(images))]


def test_netbeds_own_images_are_selected() -> None:
    old_server = Image("old-server", [], "netbed/server", ("b1", "s0"))  # replaced by a rebuild
    assert selected(BASE, SERVER, old_server) == ["base", "server", "old-server"]


def test_a_child_of_the_base_is_kept_whatever_its_name() -> None:
    # Built FROM netbed/base:bookworm, it inherits io.netbed.image=netbed/base.
    for tags in (["myorg/app:1"], ["netbed/server:mine"], ["app:1", "netbed/base:copy"]):
        child = Image("child", tags, "netbed/base", ("b1", "c1"))
        assert selected(BASE, child) == ["base"], tags


def test_a_child_of_a_host_image_is_kept() -> None:
    child = Image("child", ["myorg/server:1"], "netbed/server", ("b1", "s1", "c1"))
    assert selected(BASE, SERVER, child) == ["base", "server"]


def test_an_untagged_child_is_kept_while_its_parent_is_there() -> None:
    # The user rebuilt myorg/app: its previous build is untagged, its label inherited.
    old_child = Image("old-child", [], "netbed/base", ("b1", "c0"))
    assert selected(BASE, old_child) == ["base"]


def test_labels_that_name_no_netbed_repository_are_not_netbeds() -> None:
    assert selected(Image("x", ["other/x:1"], "other/x", ("x1",)), Image("y", [], "", ("y1",))) == []


def test_images_from_before_the_label_named_the_repository() -> None:
    legacy = Image("legacy", ["netbed/client:latest"], "true", ("b1", "l1"))
    legacy_child = Image("legacy-child", ["myorg/app:1"], "true", ("b1", "l1", "c1"))
    untagged_legacy = Image("untagged", [], "true", ("b1", "l0"))  # cannot be told from a child: kept
    assert selected(legacy, legacy_child, untagged_legacy) == ["legacy"]


def test_repository_of_a_tag() -> None:
    assert own_images.repository("netbed/client:ci") == "netbed/client"
    assert own_images.repository("localhost:5000/netbed/client") == "localhost:5000/netbed/client"
    assert own_images.repository("localhost:5000/app:1") == "localhost:5000/app"
