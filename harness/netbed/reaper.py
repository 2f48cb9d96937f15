"""Remove the testbeds whose owning session has ended (killed with SIGKILL, crashed, lost).

testcontainers' Ryuk is the model: every resource a session starts carries the
session's label, and whatever outlives the session is removed.  Here the label
is `io.netbed.owner` (see owner.py) and the check runs at the start of every
netbed command and pytest session, so a killed session's leftovers are gone by
the next netbed command at the latest.  Testbeds with an empty owner (started
with `netbed up`, or kept) are never touched; nor are those of other machines.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import docker

from . import docker_api
from .owner import Owner


def _labels(resource: Any) -> dict[str, str]:
    """A container's, network's or volume's labels (the SDK exposes them differently)."""
    labels = getattr(resource, "labels", None)
    if labels is None:
        labels = (resource.attrs or {}).get("Labels")
    return dict(labels or {})


def orphaned(client: docker.DockerClient, proc: Path = Path("/proc"),
             hostname: str | None = None) -> set[tuple[str, str]]:
    """(instance, owner label) of every labelled resource whose owner has ended."""
    flt: dict[str, Any] = {"label": [f"{docker_api.LABEL_TESTBED}=true", docker_api.LABEL_OWNER]}
    found: set[tuple[str, str]] = set()
    resources = [*client.containers.list(all=True, filters=flt), *client.networks.list(filters=flt),
                 *client.volumes.list(filters=flt)]
    for resource in resources:
        labels = _labels(resource)
        label = labels.get(docker_api.LABEL_OWNER, "")
        instance = labels.get(docker_api.LABEL_INSTANCE)
        owner = Owner.parse(label) if label else None
        if owner is not None and instance and owner.is_gone(proc, hostname):
            found.add((instance, label))
    return found


def reap_orphans(client: docker.DockerClient, proc: Path = Path("/proc"),
                 hostname: str | None = None) -> list[str]:
    """Remove what ended sessions left; returns the instances cleaned."""
    cleaned: list[str] = []
    for instance, label in sorted(orphaned(client, proc, hostname)):
        removed = docker_api.remove_by_label(client, instance, owner=label)
        if any(removed.values()):
            print(f"netbed: removed testbed '{instance}' left by an ended session ({label})",
                  file=sys.stderr, flush=True)
            cleaned.append(instance)
    return cleaned
