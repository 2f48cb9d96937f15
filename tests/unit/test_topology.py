"""Topology: subnets per instance, the compose environment, subnet choice."""

from __future__ import annotations

import pytest

from netbed.errors import NetbedError
from netbed.topology import Topology, choose_index, index_from_env


def test_default_instance_addresses_match_compose_defaults() -> None:
    env = Topology("netbed", 0).compose_env()
    assert env["NETBED_CLIENT_NET4"] == "10.77.0.0/24"
    assert env["NETBED_SERVER_NET4"] == "10.77.1.0/24"
    assert env["NETBED_CLIENT_NET6"] == "fd00:77::/64"
    assert env["NETBED_SERVER_NET6"] == "fd00:77:0:1::/64"
    assert env["NETBED_ROUTER_CLIENT_IP4"] == "10.77.0.2"
    assert env["NETBED_SERVER_IP6"] == "fd00:77:0:1::10"
    # compose.yaml's defaults are the same values, so `docker compose up` alone agrees.
    with open("compose.yaml", encoding="utf-8") as fh:
        compose = fh.read()
    for key, value in env.items():
        if key not in ("NETBED_INSTANCE", "NETBED_AGENT_TOKEN"):
            assert f"${{{key}:-{value}}}" in compose, key


def test_agent_token_is_secret_per_testbed_and_required_by_compose() -> None:
    """Each new Topology has its own token; compose.yaml refuses to start without one."""
    a, b = Topology("netbed", 0), Topology("netbed", 0)
    assert a.compose_env()["NETBED_AGENT_TOKEN"] != b.compose_env()["NETBED_AGENT_TOKEN"]
    assert len(a.agent_token) == 32 and a.agent_token not in repr(a)
    assert Topology("netbed", 0, agent_token="kept").compose_env()["NETBED_AGENT_TOKEN"] == "kept"
    with open("compose.yaml", encoding="utf-8") as fh:
        assert "${NETBED_AGENT_TOKEN:?" in fh.read()


def test_second_instance_gets_disjoint_subnets() -> None:
    a, b = Topology("a", 0), Topology("b", 5)
    assert a.server_side.net4 == "10.77.1.0/24"
    assert b.client_side.net4 == "10.77.10.0/24"
    assert b.server_side.net6 == "fd00:77:0:b::/64"


def test_choose_index_skips_subnets_in_use() -> None:
    assert choose_index("x", []) == 0
    assert choose_index("x", ["10.77.0.0/24"]) == 1
    with pytest.raises(NetbedError, match="no free"):
        choose_index("x", ["10.77.0.0/16"])


def test_choose_index_ignores_other_families_and_ranges() -> None:
    assert choose_index("x", ["172.18.0.0/16", "fd00:1::/64"]) == 0
    assert choose_index("x", ["fd00:77::/64"]) == 1


@pytest.mark.parametrize("name", ["", "UPPER", "-lead", "has space", "x" * 42])
def test_bad_instance_names_are_rejected(name: str) -> None:
    with pytest.raises(NetbedError, match="instance name"):
        Topology(name, 0)


def test_index_out_of_range() -> None:
    with pytest.raises(NetbedError, match="outside"):
        Topology("x", 128)


def test_index_from_env() -> None:
    assert index_from_env({}) is None
    assert index_from_env({"NETBED_CLIENT_NET4": "10.77.6.0/24"}) == 3
    with pytest.raises(NetbedError, match="N even"):
        index_from_env({"NETBED_CLIENT_NET4": "10.77.7.0/24"})
