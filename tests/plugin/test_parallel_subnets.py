"""Four testbeds created at the same moment all get their networks, on different subnets.

Without the subnet lock, each would see the same free pair and three would fail with
"Pool overlaps".  Only the networks (and unstarted containers) are created, which is the
part that races; everything is removed by label afterwards.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from inner_session import new_instance

from netbed import docker_api, owner
from netbed.testbed import Testbed

N = 4


@pytest.mark.integration
def test_instances_started_at_once_get_distinct_subnets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETBED_CLIENT_NET4", raising=False)  # let each choose
    client = docker_api.connect()
    me = owner.current().label
    testbeds = [Testbed(new_instance(f"lc-par{i}"), client=client, owner=me) for i in range(N)]
    testbeds[0].build()  # images up to date before the race, so the race is only about networks
    for tb in testbeds[1:]:
        tb._env_extra.update(testbeds[0]._env_extra)  # the same base image, chosen once
    start = threading.Barrier(N)

    def create(tb: Testbed) -> int:
        start.wait()
        return tb.create_networks().index

    try:
        with ThreadPoolExecutor(N) as pool:
            indices = list(pool.map(create, testbeds))
        assert len(set(indices)) == N, indices
        for tb in testbeds:
            nets = docker_api.leftovers(client, tb.instance)["networks"]
            assert sorted(nets) == sorted(f"{tb.instance}_{n}" for n in ("clientnet", "servernet", "agent_control"))
    finally:
        for tb in testbeds:
            docker_api.remove_by_label(client, tb.instance)
