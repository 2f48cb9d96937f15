"""The iptables/ip6tables rules that send forwarded packets to the engine's queues,
and the interface settings the engine needs (offloads off).

Every command goes through a ``Runner`` (``backend.Runner``), so the exact commands can be
checked in unit tests without root."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from typing import Any

from .backend import Runner, run_command
from .match import PROTOCOLS

log = logging.getLogger("netbed.router.userspace")

#: The iptables chain holding netbed's rules, jumped to from FORWARD.
CHAIN = "NETBED"


def offloads_command(ifname: str) -> list[str]:
    """The command that turns GRO, GSO and TSO off on ``ifname``."""
    return ["ethtool", "-K", ifname, "gro", "off", "gso", "off", "tso", "off"]


def disable_offloads(ifname: str, runner: Runner = run_command) -> str:
    """``ethtool -K IF gro off gso off tso off`` so impairments act per wire packet.

    Returns "ok" or why it did not work (missing ethtool, unsupported feature...): a router
    whose offloads stay on still impairs, on coalesced packets, so this is not fatal.
    """
    try:
        r = runner(offloads_command(ifname))
    except FileNotFoundError:
        return "ethtool not installed"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ethtool failed: {exc}"
    return "ok" if r.returncode == 0 else (" ".join(r.stderr.split()) or f"exit {r.returncode}")


def rule_args(
    in_if: str, out_if: str, match: Mapping[str, Any] | None, queue_num: int, family: int
) -> list[str] | None:
    """iptables arguments (after ``-A CHAIN``) for one direction, or None if ``match``
    cannot apply to this address family (icmp on IPv6, icmpv6 on IPv4)."""
    args = ["-i", in_if, "-o", out_if]
    if match is not None:
        proto = match["proto"]
        if proto == "icmp":
            if family == 6:
                return None
            args += ["-p", "icmp"]
        elif proto == "icmpv6":
            if family == 4:
                return None
            args += ["-p", "ipv6-icmp"]
        else:
            args += ["-p", str(PROTOCOLS.get(proto, proto))]
        if match["port"] is not None:
            # Source or destination port: both halves of a flow match.
            args += ["-m", "multiport", "--ports", str(match["port"])]
    # No --queue-bypass: fail-closed (see module docstring).
    return args + ["-j", "NFQUEUE", "--queue-num", str(queue_num)]


class Rules:
    """The NETBED chain in the filter table, for IPv4 and IPv6, rewritten atomically."""

    def __init__(
        self, chain: str = CHAIN, iptables: str = "iptables", ip6tables: str = "ip6tables",
        runner: Runner = run_command,
    ) -> None:
        self.chain = chain
        self._runner = runner
        self.tools = {4: iptables, 6: ip6tables}
        self.installed: dict[int, list[list[str]]] = {4: [], 6: []}
        self.jump = {4: False, 6: False}
        self.v6_error: str | None = None

    def _run(
        self, family: int, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        tool = self.tools[family]
        cmd = [tool + "-restore", "--noflush", "-w"] if stdin is not None else [tool, "-w", *args]
        try:
            r = self._runner(cmd, input=stdin)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{' '.join(cmd)}: no answer in {exc.timeout} s") from exc
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
        return r

    def set(self, rules: dict[int, list[list[str]]]) -> None:
        """Make the chain hold exactly ``rules[family]`` (each an arg list after -A CHAIN);
        jump to it from FORWARD only while it is non-empty."""
        for family in (4, 6):
            want = rules.get(family, [])
            try:
                if want != self.installed[family]:
                    # ":CHAIN - [0:0]" with --noflush creates or flushes just this chain;
                    # the whole replacement is one atomic table commit.
                    lines = ["*filter", f":{self.chain} - [0:0]"]
                    lines += [" ".join([f"-A {self.chain}", *a]) for a in want]
                    lines.append("COMMIT")
                    self._run(family, stdin="\n".join(lines) + "\n")
                    self.installed[family] = [list(a) for a in want]
                if want and not self.jump[family]:
                    if self._run(family, "-C", "FORWARD", "-j", self.chain, check=False).returncode != 0:
                        self._run(family, "-I", "FORWARD", "1", "-j", self.chain)
                    self.jump[family] = True
                elif not want and self.jump[family]:
                    self._remove_jump(family)
            except (RuntimeError, FileNotFoundError) as exc:
                if family == 4:
                    raise
                # IPv6 rules are best effort (a router without ip6tables still impairs v4).
                self.v6_error = str(exc)
                log.warning("ip6tables: %s", exc)

    def _remove_jump(self, family: int) -> None:
        for _ in range(8):
            if self._run(family, "-D", "FORWARD", "-j", self.chain, check=False).returncode != 0:
                break
        self.jump[family] = False

    def remove_all(self) -> None:
        """Remove the jump and the chain (best effort, both families)."""
        for family in (4, 6):
            try:
                self._remove_jump(family)
                self._run(family, "-F", self.chain, check=False)
                self._run(family, "-X", self.chain, check=False)
            except FileNotFoundError:
                pass
            self.installed[family] = []
