"""Remove the testbeds whose owning session has ended (killed with SIGKILL, crashed, lost).

testcontainers' Ryuk is the model: every resource a session starts carries the
session's label, and whatever outlives the session is removed.  Here the label
is `io.netbed.owner` (see owner.py) and the check runs at the start of every
netbed command and pytest session, so a killed session's leftovers are gone by
the next netbed command at the latest; a session that starts a testbed also
starts a detached watcher (`python -m netbed.reaper`) that removes it within a
second of the session's end, with no command needed.  Testbeds with an empty owner (started
with `netbed up`, or kept) are never touched; nor are those of other machines.
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time
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
    resources = [*client.containers.list(all=True, filters=flt, ignore_removed=True),
                 *client.networks.list(filters=flt), *client.volumes.list(filters=flt)]
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


# -- the watcher: a small process per session, as Ryuk is a small container per session -------
#: Set to 0 to start no watcher (then the next netbed command is what reaps).
WATCH_ENV = "NETBED_REAPER_WATCH"
_watchers: list[subprocess.Popen[bytes]] = []  # referenced, so none is reported as leaked


def _wait_for_exit(owner: Owner, poll_s: float) -> None:
    """Return once `owner` has ended: at once via a pidfd where Linux has one, else by polling."""
    try:
        pidfd = os.pidfd_open(owner.pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            if not owner.is_gone():  # the PID may have been reused just before pidfd_open
                select.select([pidfd], [], [])
        finally:
            os.close(pidfd)
        return
    while not owner.is_gone():
        time.sleep(poll_s)  # no pidfd on this system: poll the owner's /proc entry


def watch(label: str, instance: str, poll_s: float = 0.5) -> int:
    """Wait for the session `label` to end, then remove what it left of `instance`."""
    owner = Owner.parse(label)
    if owner is None:
        return 2
    _wait_for_exit(owner, poll_s)
    docker_api.remove_by_label(docker_api.connect(), instance, owner=label)
    return 0


def start_watcher(label: str, instance: str) -> None:
    """Start a detached watcher for this session's testbed (it outlives a SIGKILL of the session)."""
    if os.environ.get(WATCH_ENV, "1") == "0":
        return
    _watchers.append(subprocess.Popen(
        [sys.executable, "-m", "netbed.reaper", "--owner", label, "--instance", instance],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the session's process group, which CI signals as a whole
    ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netbed.reaper", description=watch.__doc__)
    parser.add_argument("--owner", required=True, help="the session's io.netbed.owner label")
    parser.add_argument("--instance", required=True)
    opts = parser.parse_args(argv)
    return watch(opts.owner, opts.instance)


if __name__ == "__main__":
    sys.exit(main())
