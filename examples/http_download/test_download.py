"""An HTTP server in your own image, on the server; curl on the client; the router in between."""

import pytest

PORT = 8080


@pytest.mark.netem("loss 3% delay 100ms 20ms")
def test_5mb_download_arrives_intact_over_a_lossy_link(client, server, http_image):
    with server.attach(http_image) as httpd:  # removed at the end of the block (or of the test)
        httpd.wait_for_port(PORT, timeout=30)
        sent = httpd.run(["sha256sum", "/srv/blob.bin"], timeout=30, check=True).stdout_text.split()[0]
        client.run(["curl", "-sS", "--fail", "-o", "/tmp/blob.bin", f"http://{server.ipv4}:{PORT}/blob.bin"],
                   timeout=240, check=True)
        received = client.run(["sha256sum", "/tmp/blob.bin"], timeout=30, check=True).stdout_text.split()[0]
    assert received == sent


@pytest.mark.netem("partition")
def test_client_gives_up_with_a_timeout_not_a_hang(client, server, http_image):
    with server.attach(http_image) as httpd:
        httpd.wait_for_port(PORT, timeout=30)  # checked inside the namespace: the partition does not matter
        got = client.run(["curl", "-sS", "--connect-timeout", "3", "--max-time", "10", "-o", "/dev/null",
                          f"http://{server.ipv4}:{PORT}/blob.bin"], timeout=60)
    assert got.returncode == 28, got.stderr_text  # curl's "operation timed out"
    assert "timeout was reached" in got.stderr_text.lower()
