"""The base image every testbed host is built on.

Where a registry is reachable, Dockerfiles start FROM debian:bookworm-slim.
Where none is (air-gapped CI, our own machines), `netbed up` bootstraps an
equivalent image from Debian packages with mmdebstrap and `docker import`.
We never probe a registry to decide: the choice is made from what is on the
machine, in this order:

1. NETBED_BASE_IMAGE, if set: used as is.
2. debian:bookworm-slim, if the engine already has it.
3. netbed/base:bookworm, if an earlier bootstrap made it.
4. bootstrap, if mmdebstrap is installed or can be (root with apt-get);
5. otherwise debian:bookworm-slim, which `docker build` pulls.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors

from .errors import ImageBuildError

STOCK_IMAGE = "debian:bookworm-slim"
BOOTSTRAP_IMAGE = "netbed/base:bookworm"
#: What every host image needs; the Dockerfiles install the same list. The last three are the
#: client's and server's user tools (curl, nc, iperf3): bootstrapping them into the base saves
#: those two images an `apt-get update` each (about a minute of a cold `make up`).
PACKAGES = ["python3", "iproute2", "iptables", "procps", "iputils-ping", "ethtool", "tcpdump",
            "curl", "netcat-openbsd", "iperf3"]
#: io.netbed.image names the image's own repository: an image built FROM this one inherits
#: the value but not the repository, so `netbed clean --images` leaves it alone (own_images.py).
LABELS = {"io.netbed.testbed": "true", "io.netbed.image": BOOTSTRAP_IMAGE.split(":")[0], "io.netbed.base": "true"}


def have_image(client: docker.DockerClient, name: str) -> bool:
    """Whether the engine has image `name` (nothing is pulled)."""
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code == 400:
            return False  # not a valid image reference, so no image has that name
        raise


def _can_bootstrap() -> bool:
    if shutil.which("mmdebstrap"):
        return True
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def choose_base_image(client: docker.DockerClient) -> tuple[str, str]:
    """(image, reason) — what the host images will be built FROM, and why."""
    override = os.environ.get("NETBED_BASE_IMAGE")
    if override:
        return override, "NETBED_BASE_IMAGE is set"
    if have_image(client, STOCK_IMAGE):
        return STOCK_IMAGE, "stock image present"
    if have_image(client, BOOTSTRAP_IMAGE):
        return BOOTSTRAP_IMAGE, "bootstrapped earlier from Debian packages"
    if _can_bootstrap():
        bootstrap(client)
        return BOOTSTRAP_IMAGE, "bootstrapped from Debian packages (no stock image on this machine)"
    return STOCK_IMAGE, "docker build will pull it"


def _progress(message: str) -> None:
    print(f"netbed: {message}", file=sys.stderr, flush=True)


def bootstrap(client: docker.DockerClient) -> None:
    """Build BOOTSTRAP_IMAGE from Debian packages (about 20 s and 220 MB)."""
    if not shutil.which("mmdebstrap"):
        _progress("installing mmdebstrap (apt-get) to bootstrap the base image")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "mmdebstrap"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise ImageBuildError(
                    f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-500:]}\n"
                    f"Install mmdebstrap, or set NETBED_BASE_IMAGE to an image you have."
                )
    _progress(f"bootstrapping {BOOTSTRAP_IMAGE} from Debian bookworm packages (about 20 s)")
    with tempfile.TemporaryDirectory(prefix="netbed-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        cmd = ["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(PACKAGES)}",
               "bookworm", str(tarball)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"mmdebstrap failed:\n{proc.stderr.strip()[-1500:]}")
        changes = [f"LABEL {k}={v}" for k, v in LABELS.items()]
        repository, tag = BOOTSTRAP_IMAGE.split(":")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
    _progress(f"bootstrapped {BOOTSTRAP_IMAGE}")


#: The build context's folders that go into the images (see .dockerignore).
IMAGE_SOURCES = ("services", "harness/netbed_core")
LABEL_SOURCES = "io.netbed.sources"


def sources_digest(root: Path) -> str:
    """A short digest (12 hex digits) of every file the images are built from, under `root`.

    Images carry it as a label, so a testbed built from other sources (an older checkout)
    is detected when reused. Bytecode caches are left out, as the build context does.
    """
    digest = hashlib.sha256()
    for folder in IMAGE_SOURCES:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def stale_services(containers: dict[str, Any], expected: str) -> dict[str, str]:
    """{service: the sources digest its image was built from} for every container whose image
    was built from sources other than `expected` (or carries no digest)."""
    stale: dict[str, str] = {}
    for service, container in containers.items():
        labels = (container.attrs.get("Config") or {}).get("Labels") or {}
        built_from = labels.get(LABEL_SOURCES, "unknown")
        if built_from != expected:
            stale[service] = built_from
    return stale
