"""pytest-xdist: each worker gets its own testbed, and the results equal a serial run's
(issue #12 finding 8: with `-n 2` the workers shared one router and overwrote each other's
impairments, and nothing said so).

The inner tests impair the router and then check that their own impairment is what the router
reports, and that traffic sees it; on a shared router the other worker's test would replace it
between the two. Each test also records its testbed's instance, so the outer test can check
that two workers used two testbeds.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from inner_session import inner_env, new_instance, pytest_argv

from netbed import docker_api

INNER_TESTS = '''
import json, os, socket, time
import pytest

@pytest.mark.parametrize("delay_ms", [30, 60, 90, 120])
@pytest.mark.property("xdist: a test's impairment is its own")
def test_my_impairment_is_mine(testbed, client, server, router, delay_ms):
    with open(os.environ["NETBED_XDIST_LOG"], "a") as fh:
        fh.write(json.dumps({"instance": testbed.instance, "delay": delay_ms}) + "\\n")
    router.impair(f"delay {delay_ms}ms", direction="to-server")
    rx = server.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = rx.bind(("", 0))[1]
    tx = client.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(5):
        started = time.monotonic()
        tx.sendto(b"x", (server.ipv4, port))
        rx.recvfrom(10, timeout=5)
        elapsed_ms = (time.monotonic() - started) * 1000
        assert elapsed_ms >= delay_ms - 1, (elapsed_ms, delay_ms)
        assert router.impair_status()["directions"]["to-server"]["impairment"]["spec"]["delay"]["delay_ms"] == delay_ms
'''


def _outcomes(stdout: str) -> dict[str, int]:
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", stdout)}


@pytest.mark.integration
def test_two_workers_two_testbeds_same_results(tmp_path: Path) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed (it is in the dev extra)")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    client = docker_api.connect()
    serial_instance, parallel_instance = new_instance("xs"), new_instance("xp")
    try:
        serial_log, parallel_log = tmp_path / "serial.jsonl", tmp_path / "parallel.jsonl"
        serial = subprocess.run(pytest_argv(serial_instance, tmp_path / "test_inner.py", "-p", "netbed.report"),
                                cwd=tmp_path, capture_output=True, text=True, timeout=600,
                                env=inner_env(NETBED_XDIST_LOG=str(serial_log)))
        assert serial.returncode == 0, serial.stdout[-3000:] + serial.stderr[-2000:]
        serial_report = (tmp_path / "reports" / "conformance.md").read_text()
        parallel = subprocess.run(pytest_argv(parallel_instance, tmp_path / "test_inner.py", "-p", "netbed.report",
                                              "-n", "2"),
                                  cwd=tmp_path, capture_output=True, text=True, timeout=600,
                                  env=inner_env(NETBED_XDIST_LOG=str(parallel_log)))
        assert parallel.returncode == 0, parallel.stdout[-3000:] + parallel.stderr[-2000:]
        parallel_report = (tmp_path / "reports" / "conformance.md").read_text()

        assert _outcomes(parallel.stdout) == _outcomes(serial.stdout) == {"passed": 4}
        instances = {json.loads(line)["instance"] for line in parallel_log.read_text().splitlines()}
        assert instances == {f"{parallel_instance}-gw0", f"{parallel_instance}-gw1"}, instances
        # The controller writes one whole conformance table from both workers' reports.
        row = "| xdist: a test's impairment is its own | pass 4/4 |"
        assert row in serial_report and row in parallel_report, parallel_report
        # ... and one run report, with each worker's per-test network records.
        index = json.loads((tmp_path / "reports" / "index.json").read_text())
        delays = sorted(t["network"]["directions"]["to-server"]["during"][0]["spec"]["delay"]["delay_ms"]
                        for t in index["tests"])
        assert delays == [30, 60, 90, 120], index["tests"]
        for instance in (serial_instance, *instances):
            assert docker_api.leftovers(client, instance) == {"containers": [], "networks": [], "volumes": []}
    finally:
        for instance in (serial_instance, parallel_instance, f"{parallel_instance}-gw0", f"{parallel_instance}-gw1"):
            docker_api.remove_by_label(client, instance)
