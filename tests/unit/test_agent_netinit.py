"""Where the agent listens and which packets its guard drops: pure functions, exact output."""

from __future__ import annotations

import pytest

from netbed_agent import control, guard

DATA = control.data_networks("10.77.0.0/24 fd00:77::/64 10.77.1.0/24 fd00:77:0:1::/64")


def _link(ifname: str, *addrs: tuple[str, str, int]) -> dict[str, object]:
    return {"ifname": ifname, "addr_info": [{"family": f, "local": a, "prefixlen": p} for f, a, p in addrs]}


def test_the_control_interface_is_the_one_address_outside_the_data_subnets() -> None:
    links = [_link("lo", ("inet", "127.0.0.1", 8)),
             _link("eth0", ("inet", "10.77.0.2", 24), ("inet6", "fd00:77::2", 64)),
             _link("eth1", ("inet", "172.31.0.4", 16), ("inet6", "fd00:77:ff::4", 64)),
             _link("eth2", ("inet", "10.77.1.2", 24))]
    assert control.find(links, DATA) == control.ControlInterface("eth1", "172.31.0.4", 16)


@pytest.mark.parametrize("links", [
    [_link("eth0", ("inet", "10.77.0.2", 24))],
    [_link("eth0", ("inet", "172.31.0.4", 16)), _link("eth1", ("inet", "172.30.0.4", 16))],
])
def test_no_guessing_when_the_control_interface_is_not_unique(links: list[dict[str, object]]) -> None:
    with pytest.raises(RuntimeError, match="expected exactly one IPv4 address outside the data subnets"):
        control.find(links, DATA)


def test_guard_rules_ipv4() -> None:
    """No rule uses conntrack (it would make the router's queue see reassembled IPv6)."""
    assert guard.rules(4, "eth1", "172.31.0.4", 7000, DATA) == [
        ["NETBED_GUARD_OUT", "-o", "lo", "-j", "RETURN"],
        ["NETBED_GUARD_OUT", "-o", "eth1", "-s", "172.31.0.4/32", "-p", "tcp", "--sport", "7000",
         "!", "--syn", "-j", "RETURN"],
        ["NETBED_GUARD_OUT", "-o", "eth1", "-j", "DROP"],
        ["NETBED_GUARD_OUT", "-d", "10.77.0.1/32", "-j", "DROP"],
        ["NETBED_GUARD_OUT", "-d", "10.77.1.1/32", "-j", "DROP"],
        ["NETBED_GUARD_OUT", "-m", "addrtype", "--dst-type", "BROADCAST", "-j", "DROP"],
        ["NETBED_GUARD_OUT", "-m", "addrtype", "--dst-type", "MULTICAST", "-j", "DROP"],
        ["NETBED_GUARD_FWD", "-i", "eth1", "-j", "DROP"],
        ["NETBED_GUARD_FWD", "-o", "eth1", "-j", "DROP"],
        ["NETBED_GUARD_FWD", "-d", "10.77.0.1/32", "-j", "DROP"],
        ["NETBED_GUARD_FWD", "-d", "10.77.1.1/32", "-j", "DROP"],
    ]


def test_guard_rules_ipv6_keep_neighbour_discovery() -> None:
    out = [rule for rule in guard.rules(6, "eth1", "172.31.0.4", 7000, DATA) if rule[0] == guard.OUT_CHAIN]
    assert out[:2] == [["NETBED_GUARD_OUT", "-o", "lo", "-j", "RETURN"],
                       ["NETBED_GUARD_OUT", "-o", "eth1", "-j", "DROP"]]
    assert out[2:] == [
        ["NETBED_GUARD_OUT", "-d", "fd00:77::1/128", "-j", "DROP"],
        ["NETBED_GUARD_OUT", "-d", "fd00:77:0:1::1/128", "-j", "DROP"],
        ["NETBED_GUARD_OUT", "-p", "ipv6-icmp", "--icmpv6-type", "neighbour-solicitation", "-j", "RETURN"],
        ["NETBED_GUARD_OUT", "-p", "ipv6-icmp", "--icmpv6-type", "neighbour-advertisement", "-j", "RETURN"],
        ["NETBED_GUARD_OUT", "-d", "fe80::/10", "-j", "DROP"],
        ["NETBED_GUARD_OUT", "-d", "ff00::/8", "-j", "DROP"],
    ]
    text = guard.restore_input(6, "eth1", "172.31.0.4", 7000, DATA)
    assert text.startswith("*mangle\n:NETBED_GUARD_OUT - [0:0]\n:NETBED_GUARD_FWD - [0:0]\n")
    assert text.endswith("COMMIT\n")
