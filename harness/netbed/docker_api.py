"""The Docker engine's API (the docker SDK), and the labels that find our parts.

Named docker_api, not engine: the router's impairment engine is `netbed_router.engine`.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors

from .errors import DockerUnavailable

LABEL_TESTBED = "io.netbed.testbed"
LABEL_INSTANCE = "io.netbed.instance"


def connect() -> docker.DockerClient:
    """A client for the local engine, or DockerUnavailable saying what to do."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(
            f"cannot reach the Docker engine ({exc}). Start Docker (e.g. `sudo systemctl start docker`) "
            "and check that you may use it (`docker info`)."
        ) from None
    return client


def instance_filter(instance: str | None) -> dict[str, Any]:
    """Label filter for one testbed instance, or for every netbed resource."""
    if instance is None:
        return {"label": [f"{LABEL_TESTBED}=true"]}
    return {"label": [f"{LABEL_TESTBED}=true", f"{LABEL_INSTANCE}={instance}"]}


def leftovers(client: docker.DockerClient, instance: str | None = None) -> dict[str, list[str]]:
    """Names of containers, networks and volumes labelled as (one) testbed."""
    flt = instance_filter(instance)
    return {
        "containers": [str(c.name) for c in client.containers.list(all=True, filters=flt)],
        "networks": [str(n.name) for n in client.networks.list(filters=flt)],
        "volumes": [v.name for v in client.volumes.list(filters=flt)],
    }


def remove_by_label(client: docker.DockerClient, instance: str | None = None,
                    images: bool = False) -> dict[str, list[str]]:
    """Remove everything labelled as (one) testbed; returns what was removed."""
    flt = instance_filter(instance)
    removed: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": [], "images": []}
    for container in client.containers.list(all=True, filters=flt):
        container.remove(force=True, v=True)
        removed["containers"].append(str(container.name))
    for network in client.networks.list(filters=flt):
        network.remove()
        removed["networks"].append(str(network.name))
    for volume in client.volumes.list(filters=flt):
        volume.remove(force=True)
        removed["volumes"].append(volume.name)
    if images:
        for image in client.images.list(filters={"label": [f"{LABEL_TESTBED}=true"]}):
            try:
                client.images.remove(str(image.id), force=True)
                removed["images"].append((image.tags or [image.short_id])[0])
            except docker.errors.ImageNotFound:
                pass  # a tag of an image removed just before
    return removed
