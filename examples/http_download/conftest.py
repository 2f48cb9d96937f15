"""Builds the example's image (your service) once per session; netbed never pulls it."""

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from netbed import images

IMAGE = "netbed-example/http-download:latest"


@pytest.fixture(scope="session")
def http_image() -> Iterator[str]:
    client = docker.from_env()
    base, _why = images.choose_base_image(client)  # what netbed's hosts are built FROM here
    client.images.build(path=str(Path(__file__).parent / "image"), tag=IMAGE, buildargs={"BASE_IMAGE": base},
                        rm=True, pull=False)
    yield IMAGE
