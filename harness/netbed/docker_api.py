"""The Docker engine's API (the docker SDK), and the labels that find our parts.

Named docker_api, not engine: the router's impairment engine is `netbed_router.engine`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import docker
import docker.errors

from . import own_images
from .errors import DockerUnavailable

LABEL_TESTBED = "io.netbed.testbed"
LABEL_INSTANCE = "io.netbed.instance"
#: The session that started a testbed (see owner.py); empty for one started with `netbed up`.
LABEL_OWNER = "io.netbed.owner"
#: On the images netbed builds, naming their own repository (see own_images.py).
LABEL_IMAGE = own_images.LABEL_IMAGE
IMAGE_REPOSITORIES = own_images.IMAGE_REPOSITORIES
#: On a container of a user's image in a host's network namespace (attach.py), naming the host.
LABEL_ATTACHMENT = "io.netbed.attachment"


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


def instance_filter(instance: str | None, owner: str | None = None) -> dict[str, Any]:
    """Label filter for one testbed instance (and owner), or for every netbed resource."""
    labels = [f"{LABEL_TESTBED}=true"]
    if instance is not None:
        labels.append(f"{LABEL_INSTANCE}={instance}")
    if owner is not None:
        labels.append(f"{LABEL_OWNER}={owner}")
    return {"label": labels}


# Every containers.list passes ignore_removed=True: the SDK inspects each container it lists,
# and on a CI machine running many jobs another netbed command (a reaper, a concurrent `down`)
# may remove one in between; without it the listing raised NotFound and the command crashed.


def leftovers(client: docker.DockerClient, instance: str | None = None) -> dict[str, list[str]]:
    """Names of containers, networks and volumes labelled as (one) testbed."""
    flt = instance_filter(instance)
    return {
        "containers": [str(c.name) for c in client.containers.list(all=True, filters=flt, ignore_removed=True)],
        "networks": [str(n.name) for n in client.networks.list(filters=flt)],
        "volumes": [v.name for v in client.volumes.list(filters=flt)],
    }


def remove_by_label(client: docker.DockerClient, instance: str | None = None,
                    owner: str | None = None) -> dict[str, list[str]]:
    """Remove the containers, networks and volumes labelled as (one) testbed (of one
    owner); returns what was removed."""
    flt = instance_filter(instance, owner)
    removed: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    # NotFound: another netbed command (a reaper, a concurrent `down`) removed it first.
    containers = client.containers.list(all=True, filters=flt, ignore_removed=True)
    # Attached containers (attach.py) first: they share the namespaces of the hosts.
    for container in sorted(containers, key=lambda c: LABEL_ATTACHMENT not in (getattr(c, "labels", None) or {})):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            removed["containers"].append(str(container.name))
    for network in client.networks.list(filters=flt):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
            removed["networks"].append(str(network.name))
    for volume in client.volumes.list(filters=flt):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            removed["volumes"].append(volume.name)
    return removed


def remove_images(client: docker.DockerClient) -> list[str]:
    """Remove the images netbed built (any tag, any instance), never one built FROM them
    (own_images.py); returns their names."""
    removed: list[str] = []
    labelled = client.images.list(all=True, filters={"label": [LABEL_IMAGE]})
    for image in own_images.select(labelled):
        tags = list(image.tags or [])
        try:
            client.images.remove(str(image.id), force=True)
        except docker.errors.ImageNotFound:
            continue  # a tag of an image removed just before
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                continue  # still used by a running testbed's container, or a parent of one
            raise
        removed.append((tags or [str(image.short_id)])[0])
    return removed
