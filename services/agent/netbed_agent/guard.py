"""Packet filter rules that keep every packet of this container off the Docker host.

The Docker host owns an address on each of the container's networks (each
bridge's gateway, and link-local IPv6 addresses), so it is on-link from every
container even with no default route.  These rules, in two chains of the
`mangle` table (before anyone's filter rules, including the router's queues),
drop:

- everything leaving by the control interface except the agent's own replies
  (TCP from its address and port, not a connection-opening SYN);
- anything addressed to a data network's gateway (the Docker host's bridge),
  sent or forwarded;
- IPv4 broadcast and multicast, IPv6 link-local and multicast except
  neighbour solicitation/advertisement (address resolution on a bridge
  necessarily reaches the host, as ARP does);
- anything forwarded into or out of the control network.

The software under test shares the container's namespaces (and NET_ADMIN), so
this is defence in depth, not a sandbox.

No rule uses connection tracking: a conntrack match would switch on
conntrack and its defragmentation in the container's namespace, and the
router's queue would then see reassembled IPv6 datagrams instead of the
fragments on the wire (the datagram fragmentation tests showed it).
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
from collections.abc import Sequence

log = logging.getLogger("netbed_agent")

OUT_CHAIN = "NETBED_GUARD_OUT"
FWD_CHAIN = "NETBED_GUARD_FWD"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def gateways(data_nets: Sequence[Network], family: int) -> list[str]:
    """The Docker host's address on each data network: Docker's IPAM gives a
    bridge the first address of its subnet unless told otherwise (compose.yaml
    does not)."""
    return [str(net.network_address + 1) for net in data_nets if net.version == family]


def rules(family: int, control_if: str, control_addr: str, control_port: int,
          data_nets: Sequence[Network]) -> list[list[str]]:
    """Arguments after `-A` for each rule, in order; pure, for unit tests.

    `control_addr` is the agent's IPv4 listening address (it listens on no IPv6 one).
    """
    host_bits = "32" if family == 4 else "128"
    out = [[OUT_CHAIN, "-o", "lo", "-j", "RETURN"]]
    if family == 4:
        out.append([OUT_CHAIN, "-o", control_if, "-s", f"{control_addr}/32", "-p", "tcp", "--sport", str(control_port),
                    "!", "--syn", "-j", "RETURN"])
    out.append([OUT_CHAIN, "-o", control_if, "-j", "DROP"])
    fwd = [[FWD_CHAIN, "-i", control_if, "-j", "DROP"], [FWD_CHAIN, "-o", control_if, "-j", "DROP"]]
    for gateway in gateways(data_nets, family):
        out.append([OUT_CHAIN, "-d", f"{gateway}/{host_bits}", "-j", "DROP"])
        fwd.append([FWD_CHAIN, "-d", f"{gateway}/{host_bits}", "-j", "DROP"])
    if family == 4:
        out += [[OUT_CHAIN, "-m", "addrtype", "--dst-type", kind, "-j", "DROP"] for kind in ("BROADCAST", "MULTICAST")]
    else:
        out += [[OUT_CHAIN, "-p", "ipv6-icmp", "--icmpv6-type", kind, "-j", "RETURN"]
                for kind in ("neighbour-solicitation", "neighbour-advertisement")]
        out += [[OUT_CHAIN, "-d", "fe80::/10", "-j", "DROP"], [OUT_CHAIN, "-d", "ff00::/8", "-j", "DROP"]]
    return out + fwd


def restore_input(family: int, control_if: str, control_addr: str, control_port: int,
                  data_nets: Sequence[Network]) -> str:
    """iptables-restore input: both chains created (or emptied) and filled in one commit."""
    lines = ["*mangle", f":{OUT_CHAIN} - [0:0]", f":{FWD_CHAIN} - [0:0]"]
    lines += ["-A " + " ".join(rule) for rule in rules(family, control_if, control_addr, control_port, data_nets)]
    return "\n".join([*lines, "COMMIT", ""])


def install(control_if: str, control_addr: str, control_port: int, data_nets: Sequence[Network]) -> None:
    """Install the rules for IPv4 and IPv6; raises RuntimeError if any step fails."""
    for family, tool in ((4, "iptables"), (6, "ip6tables")):
        _run([f"{tool}-restore", "-w", "--noflush"],
             restore_input(family, control_if, control_addr, control_port, data_nets))
        for hook, chain in (("OUTPUT", OUT_CHAIN), ("FORWARD", FWD_CHAIN)):
            present = subprocess.run([tool, "-w", "-t", "mangle", "-C", hook, "-j", chain], capture_output=True)
            if present.returncode != 0:
                _run([tool, "-w", "-t", "mangle", "-I", hook, "1", "-j", chain])
    log.info("guard: only replies of the agent's connections leave by %s; the Docker host's data-network "
             "addresses (%s) and broadcast/multicast/link-local are dropped",
             control_if, ", ".join(gateways(data_nets, 4) + gateways(data_nets, 6)))


def _run(argv: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
