"""The README's "your own programs" example, verbatim: it must keep working as users copy it."""

import pytest


@pytest.mark.netem("loss 3% delay 100ms 20ms")
def test_download_survives_a_bad_network(client, server):
    httpd = server.spawn(["python3", "-m", "http.server", "8080", "--bind", server.ipv4, "--directory", "/usr/lib"])
    with httpd:  # killed (its whole process group) at the end of the block, or of the test
        got = client.run(["curl", "-sS", "--retry", "20", "--retry-connrefused", "--retry-delay", "1",
                          "-o", "/tmp/page", "-w", "%{http_code}", f"http://{server.ipv4}:8080/"],
                         timeout=120, check=True)
    assert got.stdout_text == "200"
