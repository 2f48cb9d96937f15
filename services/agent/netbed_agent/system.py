"""Read-only views of the host: addresses, routes, kernel counters."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
from typing import Any

from .args import Args
from .errors import RequestError

#: The role this agent plays (client, server, router), set at start.
ROLE = "unknown"


def run_ip(*argv: str) -> Any:
    """Run `ip -j ...` and return its parsed JSON; errors carry ip's stderr."""
    proc = subprocess.run(["ip", "-j", *argv], capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise RequestError(f"ip {' '.join(argv)}: {proc.stderr.strip()}", kind="command_failed")
    return json.loads(proc.stdout or "[]")


def read_snmp() -> dict[str, dict[str, int]]:
    """Kernel protocol counters from /proc/net/snmp and /proc/net/snmp6.

    Returns {"Ip": {"ForwDatagrams": n, ...}, "Udp": {...}, "Ip6": {...}, ...}.
    """
    counters: dict[str, dict[str, int]] = {}
    with open("/proc/net/snmp", encoding="ascii") as fh:
        lines = fh.read().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        proto, keys = header.split(":", 1)
        _, vals = values.split(":", 1)
        counters[proto] = {k: int(v) for k, v in zip(keys.split(), vals.split(), strict=True)}
    try:
        with open("/proc/net/snmp6", encoding="ascii") as fh:
            for line in fh:
                key, value = line.split()
                # Longest prefix first: "UdpLite6InErrors" is not Udp6.
                for proto in ("UdpLite6", "Icmp6", "Udp6", "Ip6"):
                    if key.startswith(proto):
                        counters.setdefault(proto, {})[key[len(proto):]] = int(value)
                        break
    except FileNotFoundError:
        pass
    return counters


def op_ping(args: Args) -> dict[str, Any]:
    args.finish()
    return {"pong": True, "role": ROLE}


def op_info(args: Args) -> dict[str, Any]:
    args.finish()
    return {
        "role": ROLE,
        "hostname": socket.gethostname(),
        "addresses": run_ip("addr", "show"),
        "routes4": run_ip("-4", "route", "show"),
        "routes6": run_ip("-6", "route", "show"),
    }


def op_snmp(args: Args) -> dict[str, Any]:
    args.finish()
    return {"counters": read_snmp()}


def op_route_get(args: Args) -> dict[str, Any]:
    """The kernel's route lookup for `address` (no packet is sent).

    Returns {"routes": [...]} or {"error": "Network is unreachable"}: an
    unreachable destination is an answer here, not a failure.
    """
    address = args.str("address", required=True)
    args.finish()
    try:
        ipaddress.ip_address(address)
    except ValueError:
        # Checked here, not by ip: text starting with "-" would be an option to it.
        raise RequestError(f"route_get: {address!r} is not an IP address") from None
    proc = subprocess.run(["ip", "-j", "route", "get", address], capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        message = proc.stderr.strip()
        if message.startswith("Error: "):
            message = message[len("Error: "):]
        if "invalid" in message.lower() or "any valid prefix" in message:
            raise RequestError(f"route_get: {address!r} is not an IP address ({message})")
        return {"error": message}
    return {"routes": json.loads(proc.stdout or "[]")}


#: A sysctl name: dot-separated ASCII parts (interface names may hold "@" or ":").
SYSCTL_NAME = re.compile(r"[A-Za-z0-9_@:-]{1,64}(\.[A-Za-z0-9_@:-]{1,64}){0,7}")


def op_sysctl(args: Args) -> dict[str, Any]:
    name = args.str("name", required=True)
    args.finish()
    if not SYSCTL_NAME.fullmatch(name):
        raise RequestError(f"sysctl: bad name {name!r}")
    path = "/proc/sys/" + name.replace(".", "/")
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return {"value": fh.read(65536).strip()}
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise RequestError(f"sysctl: no such setting {name!r}") from None


OPS = {
    "ping": op_ping,
    "info": op_info,
    "snmp": op_snmp,
    "route_get": op_route_get,
    "sysctl": op_sysctl,
}
