"""`netbed up --attach server=IMAGE:CMD` and `netbed up -f OVERRIDE.yaml` (the documented
`network_mode: service:server` pattern, examples/compose.override.yaml), then `netbed down`
leaves nothing: real containers, on a testbed of their own."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from inner_session import inner_env, new_instance

from netbed import attach, docker_api, images

ROOT = Path(__file__).resolve().parents[2]
NETBED = [sys.executable, "-m", "netbed"]


@pytest.fixture(scope="module")
def httpd_image() -> Iterator[str]:
    """python3's http.server in an image built FROM the testbed's base (no RUN: a second)."""
    client = docker_api.connect()
    base, _why = images.choose_base_image(client)
    tag = f"netbed-test-httpd:{uuid.uuid4().hex[:8]}"
    client.images.build(fileobj=io.BytesIO(f'FROM {base}\nCMD ["python3", "-m", "http.server", "8080"]\n'.encode()),
                        tag=tag, rm=True, pull=False)
    try:
        yield tag
    finally:
        client.images.remove(tag, force=True)


def netbed(instance: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETBED, "--instance", instance, *args], capture_output=True, text=True, timeout=600,
                          env=env or inner_env())


@pytest.mark.integration
def test_up_attach_and_override_then_down_leaves_nothing(httpd_image: str) -> None:
    instance = new_instance("attachcli")
    client = docker_api.connect()
    try:
        up = netbed(instance, "up", "--attach", f"server={httpd_image}:python3 -m http.server 8081",
                    "-f", str(ROOT / "examples" / "compose.override.yaml"), env=inner_env(MYAPP_IMAGE=httpd_image))
        assert up.returncode == 0, up.stderr[-3000:]
        assert f"attached {httpd_image} to server" in up.stderr
        # The override's service (8080) and the attachment (8081) listen in the server's namespace
        # (polled inside the host, for up to 30 s: `up` cannot know when a user's program listens).
        listening = netbed(instance, "run", "--timeout", "60", "server", "--", "sh", "-c",
                           "for i in $(seq 300); do ss -Hltn | grep -q ':8080 ' && ss -Hltn | grep -q ':8081 ' "
                           "&& exit 0; sleep 0.1; done; ss -Hltn; exit 1")
        assert listening.returncode == 0, listening.stdout + listening.stderr
        status = json.loads(netbed(instance, "status", "--json").stdout)
        server_ip = status["hosts"]["server"]["ipv4"]
        assert [(a["host"], a["image"], a["state"]) for a in status["attachments"]] == \
            [("server", httpd_image, "running")], "`netbed status` lists the attachment"
        for port in (8080, 8081):
            got = netbed(instance, "run", "client", "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                         f"http://{server_ip}:{port}/")
            assert got.stdout == "200", got.stderr
        again = netbed(instance, "up", "--no-build", "--attach", f"server={httpd_image}:python3 -m http.server 8081")
        assert again.returncode == 0, again.stderr[-3000:]
        attached = client.containers.list(filters={"label": [f"io.netbed.instance={instance}",
                                                             attach.LABEL_ATTACHMENT]})
        assert len(attached) == 1, "a second `up --attach` of the same image replaces the first"

        down = netbed(instance, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert docker_api.leftovers(client, instance) == {"containers": [], "networks": [], "volumes": []}
        assert client.containers.list(all=True, filters={"label": f"com.docker.compose.project={instance}"}) == []
    finally:
        docker_api.remove_by_label(client, instance)
        for container in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={instance}"}):
            container.remove(force=True)


def test_attach_of_a_missing_image_fails_before_anything_starts() -> None:
    instance = new_instance("attachcli")
    missing = f"netbed-test-absent-{uuid.uuid4().hex[:8]}:1"
    up = netbed(instance, "up", "--attach", f"server={missing}")
    assert up.returncode == 1
    assert missing in up.stderr and "never pulls" in up.stderr and "is up" not in up.stderr
    assert docker_api.leftovers(docker_api.connect(), instance) == {"containers": [], "networks": [], "volumes": []}
