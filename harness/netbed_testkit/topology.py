"""The client - router - server topology in three network namespaces, like the Docker testbed.

    client  cr ======= rb  router  ra ======= sr  server
    10.77.0.10      10.77.0.2 | 10.77.1.2      10.77.1.10
    fd00:77::10                                fd00:77:0:1::10

The addressing is the default testbed's (netbed_core.subnets).  The router's interfaces are
named so that no name hints at a side: the backends must find them by subnet, as they do in
the router container.  Client and server route only the other side's subnet via the router
(no default route), the router forwards IPv4 and IPv6, and neighbours are static, so the
only packets on the veths are the ones a test sends.  Nothing is created in the namespace
of the caller: the veth pairs are made directly inside the new namespaces.

``Topology`` is the description (names and addresses, no side effects); ``built(topology)``
creates it and deletes it again, also after a failure half-way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from netbed_core import subnets

from .namespaces import run, write_sysctl


@dataclass(frozen=True)
class Link:
    """One end of a veth pair: namespace, interface name, MAC, IPv4 and IPv6 address."""

    namespace: str
    ifname: str
    mac: str
    ipv4: str
    ipv6: str


@dataclass(frozen=True)
class Topology:
    """Names of the three namespaces (``PREFIX`` + c, r, s) and of the four veth ends."""

    prefix: str

    @classmethod
    def for_process(cls, kind: str) -> Topology:
        """Namespaces named after this process (``KIND`` + pid), so parallel runs never meet."""
        return cls(f"{kind}{os.getpid() % 100000}")

    @property
    def client(self) -> str:
        return f"{self.prefix}c"

    @property
    def router(self) -> str:
        return f"{self.prefix}r"

    @property
    def server(self) -> str:
        return f"{self.prefix}s"

    @property
    def namespaces(self) -> tuple[str, str, str]:
        return self.client, self.router, self.server

    @property
    def client_end(self) -> Link:
        return Link(self.client, "cr", "02:00:00:00:00:0c", subnets.CLIENT4, subnets.CLIENT6)

    @property
    def router_client_end(self) -> Link:
        return Link(self.router, "rb", "02:00:00:00:00:b0", subnets.ROUTER_CLIENT4, subnets.ROUTER_CLIENT6)

    @property
    def router_server_end(self) -> Link:
        return Link(self.router, "ra", "02:00:00:00:00:a0", subnets.ROUTER_SERVER4, subnets.ROUTER_SERVER6)

    @property
    def server_end(self) -> Link:
        return Link(self.server, "sr", "02:00:00:00:00:05", subnets.SERVER4, subnets.SERVER6)

    @property
    def links(self) -> tuple[tuple[Link, Link], tuple[Link, Link]]:
        """The two veth pairs, each as (outer end, router end)."""
        return (self.client_end, self.router_client_end), (self.server_end, self.router_server_end)

    def address(self, namespace: str, v6: bool = False) -> str:
        """The client's or the server's address."""
        end = {self.client: self.client_end, self.server: self.server_end}[namespace]
        return end.ipv6 if v6 else end.ipv4


def create(topology: Topology) -> None:
    """Create the namespaces, veths, addresses, static neighbours and routes; the router
    forwards.  On failure, whatever was created stays: call ``delete`` (``built`` does)."""
    for ns in topology.namespaces:
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
    for outer, inner in topology.links:
        run("ip", "link", "add", outer.ifname, "address", outer.mac, "netns", outer.namespace, "type", "veth",
            "peer", "name", inner.ifname, "address", inner.mac, "netns", inner.namespace)
    for pair in topology.links:
        for end in pair:
            # no duplicate address detection: the addresses are usable at once
            write_sysctl(end.namespace, f"net/ipv6/conf/{end.ifname}/accept_dad", "0")
            run("ip", "-n", end.namespace, "addr", "add", f"{end.ipv4}/24", "dev", end.ifname)
            run("ip", "-n", end.namespace, "addr", "add", f"{end.ipv6}/64", "dev", end.ifname, "nodad")
            run("ip", "-n", end.namespace, "link", "set", end.ifname, "up")
    write_sysctl(topology.router, "net/ipv4/ip_forward", "1")
    write_sysctl(topology.router, "net/ipv6/conf/all/forwarding", "1")
    for a, b in topology.links:
        for end, peer in ((a, b), (b, a)):
            for addr in (peer.ipv4, peer.ipv6):
                run("ip", "-n", end.namespace, "neigh", "replace", addr, "lladdr", peer.mac, "dev", end.ifname,
                    "nud", "permanent")
    (client, router_c), (server, router_s) = topology.links
    for end, gateway, net4, net6 in ((client, router_c, subnets.SERVER_NET4, subnets.SERVER_NET6),
                                     (server, router_s, subnets.CLIENT_NET4, subnets.CLIENT_NET6)):
        run("ip", "-n", end.namespace, "route", "add", net4, "via", gateway.ipv4)
        run("ip", "-n", end.namespace, "-6", "route", "add", net6, "via", gateway.ipv6)


def delete(topology: Topology) -> None:
    """Delete the namespaces (with them their veths, routes and iptables rules).  Idempotent."""
    for ns in reversed(topology.namespaces):
        run("ip", "netns", "del", ns, check=False)


@contextmanager
def built(topology: Topology) -> Iterator[Topology]:
    """``create`` for the block, ``delete`` afterwards, whatever happened."""
    try:
        create(topology)
        yield topology
    finally:
        delete(topology)
