"""A real image built FROM netbed's images is not one `netbed clean --images` removes.

Builds tiny children (one LABEL line, no RUN) FROM the running testbed's server image and
FROM the base image, then runs clean's selection (own_images.select over every labelled
image, as docker_api.remove_images does) without removing anything but the children.
"""

from __future__ import annotations

import io
import os
import uuid

import docker.errors
import pytest

from netbed import images, own_images
from netbed.testbed import Testbed


def build_child(client: docker.DockerClient, parent: str, tag: str) -> str:
    dockerfile = f"FROM {parent}\nLABEL io.example.app=yes\n".encode()
    image, _log = client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False)
    return str(image.id)


def test_children_of_netbed_images_are_not_selected_for_clean(testbed: Testbed) -> None:
    client = testbed.docker
    # The tag, not the running container's image: compose labels an image with the project that
    # built it, so another instance's build (same NETBED_IMAGE_TAG) may have moved the tag since.
    server_image = client.images.get(f"netbed/server:{os.environ.get('NETBED_IMAGE_TAG', 'latest')}")
    parents = [str(server_image.tags[0])]
    try:
        client.images.get(images.BOOTSTRAP_IMAGE)
        parents.append(images.BOOTSTRAP_IMAGE)
    except docker.errors.ImageNotFound:
        pass  # a machine with the stock Debian image never bootstraps netbed's base
    built: list[str] = []
    try:
        for parent in parents:
            tag = f"netbed-test-child/{uuid.uuid4().hex[:8]}:1"
            built.append(build_child(client, parent, tag))
            assert client.images.get(tag).labels.get(own_images.LABEL_IMAGE), "the child inherited netbed's label"
        selected = {image.id for image in own_images.select(
            client.images.list(all=True, filters={"label": [own_images.LABEL_IMAGE]}))}
        assert server_image.id in selected, "netbed's own server image is one clean removes"
        for child in built:
            assert child not in selected
    finally:
        for child in built:
            try:
                client.images.remove(child, force=True)
            except docker.errors.ImageNotFound:
                pytest.fail(f"child image {child} vanished during the test")
