"""host.attach: a user's image, unchanged, in a host's network namespace, across the router.

The image is built here FROM the testbed's base image (one CMD line, no RUN, so it takes a
second): python3's http.server, as a user's own service would be.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from netbed import attach, docker_api, images, reaper
from netbed.errors import AttachError, ImageNotLocal, NotReady, ProcessTimeout
from netbed.host import Host
from netbed.testbed import Testbed

PORT = 8080


@pytest.fixture(scope="module")
def httpd_image() -> Iterator[str]:
    client = docker_api.connect()
    base, _why = images.choose_base_image(client)
    tag = f"netbed-test-httpd:{uuid.uuid4().hex[:8]}"
    dockerfile = f'FROM {base}\nCMD ["python3", "-m", "http.server", "{PORT}"]\n'.encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False)
    try:
        yield tag
    finally:
        client.images.remove(tag, force=True)


def attachments_of(testbed: Testbed) -> list[str]:
    flt = {"label": [f"{docker_api.LABEL_INSTANCE}={testbed.instance}", attach.LABEL_ATTACHMENT]}
    return [str(c.name) for c in testbed.docker.containers.list(all=True, filters=flt)]


def test_attached_server_is_reached_from_the_client_through_the_router(
        testbed: Testbed, client: Host, server: Host, httpd_image: str) -> None:
    forwarded_before = testbed.router.counters()["ipv4_forwarded"]
    with server.attach(httpd_image) as httpd:
        httpd.wait_for_port(PORT, timeout=30)
        got = client.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://{server.ipv4}:{PORT}/"],
                         timeout=30, check=True)
        assert got.stdout_text == "200"
        assert testbed.router.counters()["ipv4_forwarded"] > forwarded_before, "the request crossed the router"
        assert "GET / HTTP/1.1" in httpd.logs(), "the attached server logged the request"
        # Same namespace: the attached container sees the host's address.
        addresses = httpd.run(["python3", "-c", "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                               f"s.connect(('{client.ipv4}', 9)); print(s.getsockname()[0])"], timeout=20, check=True)
        assert addresses.stdout_text.strip() == server.ipv4
    assert attachments_of(testbed) == [], "leaving the with block removed it"


def test_attachments_are_removed_when_the_test_ends(testbed: Testbed, server: Host, httpd_image: str) -> None:
    httpd = server.attach(httpd_image, ["python3", "-m", "http.server", "8081"], name="kept-open")
    assert httpd.name == f"{testbed.instance}-server-kept-open"
    assert server.attachments == [httpd]
    from netbed.pytest_plugin import reset_testbed
    reset_testbed(testbed)  # what the plugin runs after every test
    assert attachments_of(testbed) == [] and server.attachments == []


def test_udp_port_and_a_port_that_never_opens(server: Host, httpd_image: str) -> None:
    udp = ["python3", "-c", "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
           "s.bind(('', 5353)); print('bound', flush=True); time.sleep(600)"]
    with server.attach(httpd_image, udp) as listener:
        listener.wait_for_port(5353, proto="udp", timeout=30)
        started = time.monotonic()
        with pytest.raises(NotReady, match="nothing listens on tcp port 5353 after 1 s"):
            listener.wait_for_port(5353, proto="tcp", timeout=1)
        assert time.monotonic() - started < 10


def test_a_command_that_exits_is_reported_with_its_log(server: Host, httpd_image: str) -> None:
    with server.attach(httpd_image, ["python3", "-c", "import sys; print('bad config'); sys.exit(3)"]) as broken:
        with pytest.raises(AttachError, match="bad config") as caught:
            broken.wait_for_port(PORT, timeout=30)
        assert "exited" in str(caught.value)


def test_run_in_the_attachment_enforces_its_timeout(server: Host, httpd_image: str) -> None:
    with server.attach(httpd_image) as httpd:
        result = httpd.run(["sh", "-c", "echo out; echo err >&2; exit 4"], timeout=20)
        assert (result.returncode, result.stdout, result.stderr) == (4, b"out\n", b"err\n")
        started = time.monotonic()
        with pytest.raises(ProcessTimeout) as caught:
            httpd.run(["sh", "-c", "echo begun; exec sleep 60"], timeout=1)
        assert time.monotonic() - started < 10
        assert caught.value.stdout == b"begun\n"
        left = httpd.run(["pgrep", "-x", "sleep"], timeout=20)
        assert left.returncode == 1, f"the timed-out process is still running: {left.stdout_text}"


def test_a_missing_image_is_one_line_naming_it_and_nothing_is_pulled(testbed: Testbed, server: Host) -> None:
    missing = f"netbed-test-absent-{uuid.uuid4().hex[:8]}:1"
    with pytest.raises(ImageNotLocal) as caught:
        server.attach(missing)
    message = str(caught.value)
    assert missing in message and "\n" not in message and "never pulls" in message
    assert attachments_of(testbed) == []
    with pytest.raises(docker.errors.ImageNotFound):
        testbed.docker.images.get(missing)


def test_the_reaper_removes_an_attachment_whose_session_ended(testbed: Testbed, server: Host,
                                                             httpd_image: str) -> None:
    # A PID no process has: the label of a session that ended.
    dead = f"{2**22 + 12345}@{socket.gethostname()}:1"
    orphan = attach.start(server, httpd_image, owner=dead)
    try:
        assert reaper.reap_orphans(testbed.docker) == [testbed.instance]
        assert orphan.status == "removed"
        assert testbed.is_running(), "only the ended session's attachment was removed"
    finally:
        orphan.stop()


INNER_FAILING_TEST = '''
import os

def test_fails_with_an_attachment(server):
    httpd = server.attach(os.environ["HTTPD_IMAGE"], ["python3", "-c", "print('hello from the sidecar', flush=True); "
                                                      "import time; time.sleep(600)"])
    httpd.run(["true"], timeout=20)
    import time
    deadline = time.monotonic() + 30
    while "hello" not in httpd.logs() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling its log, with a deadline
    assert False, "deliberate failure: the report must carry the attachment's log"
'''


def test_a_failing_tests_report_carries_the_attachments_log_and_it_is_removed(
        testbed: Testbed, httpd_image: str, tmp_path: Path) -> None:
    """An inner pytest session on this testbed (reused, so left running): its failing test's
    report shows the attachment's log, and the attachment is gone after the test."""
    (tmp_path / "test_inner.py").write_text(INNER_FAILING_TEST)
    env = {**os.environ, "HTTPD_IMAGE": httpd_image}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--netbed-instance",
                           testbed.instance, "test_inner.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "netbed attachment on server" in proc.stdout and "hello from the sidecar" in proc.stdout, proc.stdout[-3000:]
    assert attachments_of(testbed) == []
