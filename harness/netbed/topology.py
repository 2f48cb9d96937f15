"""The testbed's description: instance name, subnets and addresses.

Pure data, no Docker.  `Topology.compose_env()` renders the NETBED_*
variables compose.yaml reads, so two instances on one machine get
different subnets and never collide.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import NetbedError

DEFAULT_INSTANCE = "netbed"
#: Testbed N uses 10.77.(2N).0/24 (client side) and 10.77.(2N+1).0/24 (server side).
MAX_INDEX = 127
_INSTANCE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


def check_instance_name(name: str) -> str:
    if not _INSTANCE_RE.match(name):
        raise NetbedError(
            f"bad testbed instance name {name!r}: use 1-41 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Side:
    """One data network: its subnets, the router's and the host's address on it."""

    net4: str
    net6: str
    router4: str
    router6: str
    host4: str
    host6: str


@dataclass(frozen=True)
class Topology:
    """Everything that differs between two testbeds on one machine."""

    instance: str
    index: int
    #: The secret every agent request carries (NETBED_AGENT_TOKEN in the
    #: containers); new per testbed, reused while one runs (Testbed.topology).
    agent_token: str = field(default_factory=lambda: secrets.token_hex(16), repr=False, compare=False)

    def __post_init__(self) -> None:
        check_instance_name(self.instance)
        if not 0 <= self.index <= MAX_INDEX:
            raise NetbedError(f"testbed subnet index {self.index} is outside 0-{MAX_INDEX}")

    def _side(self, offset: int) -> Side:
        third = 2 * self.index + offset
        v4 = f"10.77.{third}"
        v6 = f"fd00:77:0:{third:x}"
        # Canonical (compressed) text, as the engine reports it back.
        def six(text: str) -> str:
            return str(ipaddress.ip_interface(text).ip) if "/" not in text else str(ipaddress.ip_network(text))

        return Side(
            net4=f"{v4}.0/24",
            net6=six(f"{v6}::/64"),
            router4=f"{v4}.2",
            router6=six(f"{v6}::2"),
            host4=f"{v4}.10",
            host6=six(f"{v6}::10"),
        )

    @property
    def client_side(self) -> Side:
        return self._side(0)

    @property
    def server_side(self) -> Side:
        return self._side(1)

    def compose_env(self) -> dict[str, str]:
        c, s = self.client_side, self.server_side
        return {
            "NETBED_INSTANCE": self.instance,
            "NETBED_CLIENT_NET4": c.net4,
            "NETBED_CLIENT_NET6": c.net6,
            "NETBED_SERVER_NET4": s.net4,
            "NETBED_SERVER_NET6": s.net6,
            "NETBED_CLIENT_IP4": c.host4,
            "NETBED_CLIENT_IP6": c.host6,
            "NETBED_SERVER_IP4": s.host4,
            "NETBED_SERVER_IP6": s.host6,
            "NETBED_ROUTER_CLIENT_IP4": c.router4,
            "NETBED_ROUTER_CLIENT_IP6": c.router6,
            "NETBED_ROUTER_SERVER_IP4": s.router4,
            "NETBED_ROUTER_SERVER_IP6": s.router6,
            # The control network is dual-stack so that Docker makes it the
            # gateway network, which is where it forwards published ports.
            "NETBED_CONTROL_NET6": str(ipaddress.ip_network(f"fd00:77:ff:{self.index:x}::/64")),
            "NETBED_AGENT_TOKEN": self.agent_token,
        }

    def addresses(self) -> dict[str, dict[str, str]]:
        """Data-plane addresses by host: {"client": {"ipv4": ..., "ipv6": ...}, ...}."""
        c, s = self.client_side, self.server_side
        return {
            "client": {"ipv4": c.host4, "ipv6": c.host6},
            "router": {"ipv4": c.router4, "ipv6": c.router6,
                       "ipv4_server_side": s.router4, "ipv6_server_side": s.router6},
            "server": {"ipv4": s.host4, "ipv6": s.host6},
        }


def index_from_env(env: dict[str, str]) -> int | None:
    """The subnet index a NETBED_CLIENT_NET4 variable pins, if any."""
    net = env.get("NETBED_CLIENT_NET4")
    if not net:
        return None
    match = re.match(r"^10\.77\.(\d+)\.0/24$", net)
    if not match or int(match.group(1)) % 2:
        raise NetbedError(f"NETBED_CLIENT_NET4={net!r}: expected 10.77.N.0/24 with N even")
    return int(match.group(1)) // 2


def choose_index(instance: str, in_use: Iterable[str], preferred: int = 0) -> int:
    """Pick a subnet index whose two /24s overlap no subnet in `in_use`.

    `in_use` holds the subnets of the engine's existing networks (other
    testbeds, other projects).  The default instance prefers index 0 so its
    addresses match the README.
    """
    used = [ipaddress.ip_network(n, strict=False) for n in in_use]
    order = [preferred] + [i for i in range(MAX_INDEX + 1) if i != preferred]
    for index in order:
        topo = Topology(instance, index)
        sides = (topo.client_side, topo.server_side)
        mine = [ipaddress.ip_network(net) for side in sides for net in (side.net4, side.net6)]
        if not any(m.version == u.version and m.overlaps(u) for m in mine for u in used):
            return index
    raise NetbedError("no free 10.77.x.0/24 subnet pair for another testbed; run `make clean`")
