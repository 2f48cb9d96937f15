"""The kernel netem backend without a kernel: tc/ip command construction against a fake runner,
the read-back comparison and the probe's parsing. (The real thing runs in a VM: vm/run.sh.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from netbed_core.netem import NetemError, parse
from netbed_router.backend_kernel import (
    KernelBackend,
    KernelBackendError,
    ReadbackMismatch,
    compare_netem_options,
    expected_netem_options,
    filter_commands,
    normalize_match,
    probe_kernel_netem,
    probe_reason,
)

NETS = ("10.77.0.0/24", "10.77.1.0/24", "fd00:77::/64", "fd00:77:0:1::/64")
# the server side comes first and is eth0: names say nothing, addresses decide
ADDRS = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.77.1.2", "prefixlen": 24},
                                     {"family": "inet6", "local": "fd00:77:0:1::2", "prefixlen": 64}]},
    {"ifname": "eth1", "addr_info": [{"family": "inet", "local": "10.77.0.2", "prefixlen": 24},
                                     {"family": "inet6", "local": "fd00:77::2", "prefixlen": 64},
                                     {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
]
DEFAULT_QDISC = {"kind": "noqueue", "handle": "0:", "root": True, "refcnt": 2, "options": {}}


def done(argv: Sequence[str], rc: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(list(argv), rc, out, err)


class FakeKernel:
    """Just enough of ip/tc/ethtool: remembers qdiscs and filters per device and prints them like
    iproute2 6.1's JSON (netem options as the real kernel reports them)."""

    def __init__(self, addrs: list[dict[str, Any]] | None = None) -> None:
        self.addrs = addrs if addrs is not None else ADDRS
        self.calls: list[list[str]] = []
        self.qdiscs: dict[str, list[dict[str, Any]]] = {"eth0": [dict(DEFAULT_QDISC)], "eth1": [dict(DEFAULT_QDISC)]}
        self.filters: dict[str, list[dict[str, Any]]] = {"eth0": [], "eth1": []}
        self.tamper: dict[str, Any] = {}  # merged into every netem's options (a kernel that disagrees)
        self.refuse_duplicate_mix = False  # Linux 6.1.y: no netem beside a duplicating one

    def netem_options(self, args: list[str]) -> dict[str, Any]:
        opts = expected_netem_options(parse(args))
        opts.setdefault("gap", 0)
        return {**opts, **self.tamper}

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        a = list(argv)
        assert all(isinstance(x, str) for x in a), a
        self.calls.append(a)
        if a[:4] == ["ip", "-j", "addr", "show"]:
            return done(a, out=json.dumps(self.addrs))
        if a[0] == "ethtool":
            return done(a)
        if a[:2] == ["tc", "-j"] and "qdisc" in a:
            return done(a, out=json.dumps(self.qdiscs[a[-1]]))
        if a[:3] == ["tc", "-j", "filter"]:
            return done(a, out=self.filter_json(a[5], a[7]))
        if a[:3] == ["tc", "qdisc", "replace"]:
            return self.replace(a)
        if a[:3] == ["tc", "qdisc", "del"]:
            self.qdiscs[a[4]] = [dict(DEFAULT_QDISC)]
            self.filters[a[4]] = []
            return done(a)
        if a[:3] == ["tc", "filter", "add"]:
            return self.add_filter(a)
        raise AssertionError(f"unexpected command {a}")

    def replace(self, a: list[str]) -> subprocess.CompletedProcess[str]:
        dev, where = a[4], a[5]
        handle = a[a.index("handle") + 1]
        kind_at = a.index("handle") + 2
        kind, args = a[kind_at], a[kind_at + 1:]
        if kind == "netem" and self.refuse_duplicate_mix:
            old = [q for q in self.qdiscs[dev] if q["kind"] == "netem"]
            if old and ("duplicate" in args or any("duplicate" in q["options"] for q in old)):
                return done(a, 2, err="Error: netem: cannot mix duplicating netems with other netems in tree.\n")
        if kind == "netem":
            q: dict[str, Any] = {"kind": "netem", "handle": handle, "options": self.netem_options(args)}
        else:
            assert kind == "prio" and args[:2] == ["bands", "3"] and args[2] == "priomap", args
            q = {"kind": "prio", "handle": handle, "options": {"bands": 3, "priomap": [int(x) for x in args[3:]],
                                                               "multiqueue": False}}
        if where == "root":
            self.qdiscs[dev] = [{**q, "root": True, "refcnt": 2}]
            self.filters[dev] = []
        else:
            assert where == "parent"
            self.qdiscs[dev].append({**q, "parent": a[6]})
        return done(a)

    def add_filter(self, a: list[str]) -> subprocess.CompletedProcess[str]:
        dev, protocol = a[4], a[a.index("protocol") + 1]
        keys = []
        i = a.index("u32") + 1
        while a[i] == "match":
            sel, field, value, mask = a[i + 1], a[i + 2], int(a[i + 3], 0), int(a[i + 4], 0)
            v4 = sel == "ip"
            off, shift = {"protocol": (8 if v4 else 4, 16 if v4 else 8), "dport": (20 if v4 else 40, 0),
                          "sport": (20 if v4 else 40, 16)}[field]
            keys.append({"value": f"{value << shift:x}", "mask": f"{mask << shift:x}", "offmask": "", "off": off})
            i += 5
        assert a[i] == "flowid"
        self.filters[dev].append({"protocol": protocol, "flowid": a[i + 1], "keys": keys})
        return done(a)

    def filter_json(self, dev: str, parent: str) -> str:
        # tc prints one object per u32 key with a repeated "match" key: not valid for json.dumps
        parts = []
        for f in self.filters[dev]:
            matches = ",".join('"match":' + json.dumps(k) for k in f["keys"])
            parts.append(f'{{"parent":"{parent}","protocol":"{f["protocol"]}","kind":"u32"}}')
            parts.append(f'{{"parent":"{parent}","protocol":"{f["protocol"]}","kind":"u32","options":'
                         f'{{"fh":"800::800","flowid":"{f["flowid"]}",{matches}}}}}')
        return "[" + ",".join(parts) + "]"

    def tc_changes(self) -> list[list[str]]:
        return [c for c in self.calls if c[0] == "tc" and c[1] != "-j"]


def spec(text: str) -> dict[str, object]:
    return parse(text).to_dict()


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
def backend(kernel: FakeKernel) -> KernelBackend:
    b = KernelBackend(*NETS, runner=kernel)
    kernel.calls.clear()
    return b


# ---------------------------------------------------------------------------------------------
# interfaces and offloads


def test_interfaces_are_found_by_subnet_not_name(kernel: FakeKernel) -> None:
    b = KernelBackend(*NETS, runner=kernel)
    assert (b.client_if, b.server_if) == ("eth1", "eth0")
    assert b.interface("to-server") == "eth0" and b.interface("to-client") == "eth1"
    assert ["ethtool", "-K", "eth1", "gro", "off", "gso", "off", "tso", "off"] in kernel.calls
    assert ["ethtool", "-K", "eth0", "gro", "off", "gso", "off", "tso", "off"] in kernel.calls
    assert b.offloads == {"eth1": "ok", "eth0": "ok"}


def test_ipv6_only_subnets_are_enough() -> None:
    b = KernelBackend("10.99.0.0/24", "10.99.1.0/24", "fd00:77::/64", "fd00:77:0:1::/64",
                      runner=FakeKernel(), offloads_off=False)
    assert (b.client_if, b.server_if) == ("eth1", "eth0")


def test_missing_subnet_is_a_clear_error() -> None:
    with pytest.raises(KernelBackendError, match=r"no interface has an address in the server subnet \(10.88.1.0/24\)"):
        KernelBackend("10.77.0.0/24", "10.88.1.0/24", runner=FakeKernel())


def test_both_subnets_on_one_interface_is_refused() -> None:
    addrs = [{"ifname": "eth0", "addr_info": [{"local": "10.77.0.2"}, {"local": "10.77.1.2"}]}]
    with pytest.raises(KernelBackendError, match="both on eth0"):
        KernelBackend("10.77.0.0/24", "10.77.1.0/24", runner=FakeKernel(addrs))


def test_offloads_failure_is_recorded_not_fatal() -> None:
    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if argv[0] == "ethtool":
            raise FileNotFoundError(2, "No such file", "ethtool")
        return FakeKernel()(argv)
    b = KernelBackend(*NETS, runner=runner)
    assert b.offloads == {"eth1": "ethtool not installed", "eth0": "ethtool not installed"}


# ---------------------------------------------------------------------------------------------
# apply without a match


def test_apply_replaces_the_root_with_netem(backend: KernelBackend, kernel: FakeKernel) -> None:
    res = backend.apply("to-server", spec("delay 50ms loss 1%"), None)
    assert kernel.tc_changes() == [
        ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "10:", "netem",
         "limit", "1000", "delay", "50ms", "loss", "random", "1%"],
    ]
    assert res.details["interface"] == "eth0" and res.queued is True
    assert res.details["readback"]["delay"] == {"delay": 0.05, "jitter": 0.0, "correlation": 0.0}
    assert ["tc", "-j", "qdisc", "show", "dev", "eth0"] in kernel.calls  # read back


def test_each_apply_grafts_a_fresh_qdisc_by_alternating_handles(backend: KernelBackend, kernel: FakeKernel) -> None:
    # same handle = netem "change", which keeps options the new command does not mention
    for text in ("delay 10ms", "corrupt 1%", "loss 5%"):
        backend.apply("to-client", spec(text), None)
    handles = [c[c.index("handle") + 1] for c in kernel.tc_changes()]
    assert handles == ["10:", "11:", "10:"]
    assert all(c[4] == "eth1" for c in kernel.tc_changes())


def test_partition_is_loss_100(backend: KernelBackend, kernel: FakeKernel) -> None:
    backend.apply("to-server", spec("partition"), None)
    assert kernel.tc_changes()[0][-4:] == ["limit", "1000", "loss", "100%"]


def test_pristine_spec_clears(backend: KernelBackend, kernel: FakeKernel) -> None:
    backend.apply("to-server", spec("delay 5ms"), None)
    res = backend.apply("to-server", spec(""), None)
    assert res.queued is False
    assert kernel.tc_changes()[-1] == ["tc", "qdisc", "del", "dev", "eth0", "root"]


def test_bad_input_is_rejected_before_any_change(backend: KernelBackend, kernel: FakeKernel) -> None:
    with pytest.raises(ValueError, match="direction"):
        backend.apply("sideways", spec("delay 1ms"), None)
    with pytest.raises(NetemError):
        backend.apply("to-server", {"delay": {"delay_ms": -1}}, None)
    for bad in ({"proto": "icmp", "port": 80}, {"proto": "udp", "port": 0}, {"proto": "bogus", "port": None},
                {"proto": True, "port": None}, {"proto": "udp", "ports": 5}):
        with pytest.raises(ValueError, match="match"):
            backend.apply("to-server", spec("delay 1ms"), bad)
    assert kernel.tc_changes() == []


# ---------------------------------------------------------------------------------------------
# apply with a match: prio + u32


def test_match_builds_prio_with_netem_on_band_3_and_u32_filters(backend: KernelBackend, kernel: FakeKernel) -> None:
    res = backend.apply("to-server", spec("delay 30ms"), {"proto": "udp", "port": 5000})
    assert kernel.tc_changes() == [
        ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "20:", "prio", "bands", "3", "priomap",
         *["1"] * 16],
        ["tc", "qdisc", "replace", "dev", "eth0", "parent", "20:3", "handle", "30:", "netem",
         "limit", "1000", "delay", "30ms"],
        ["tc", "filter", "add", "dev", "eth0", "parent", "20:", "protocol", "ip", "prio", "1", "u32",
         "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", "5000", "0xffff", "flowid", "20:3"],
        ["tc", "filter", "add", "dev", "eth0", "parent", "20:", "protocol", "ip", "prio", "2", "u32",
         "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", "5000", "0xffff", "flowid", "20:3"],
        ["tc", "filter", "add", "dev", "eth0", "parent", "20:", "protocol", "ipv6", "prio", "3", "u32",
         "match", "ip6", "protocol", "17", "0xff", "match", "ip6", "dport", "5000", "0xffff", "flowid", "20:3"],
        ["tc", "filter", "add", "dev", "eth0", "parent", "20:", "protocol", "ipv6", "prio", "4", "u32",
         "match", "ip6", "protocol", "17", "0xff", "match", "ip6", "sport", "5000", "0xffff", "flowid", "20:3"],
    ]
    assert res.details["match"] == {"proto": "udp", "port": 5000}
    assert ["tc", "-j", "filter", "show", "dev", "eth0", "parent", "20:"] in kernel.calls
    backend.apply("to-server", spec("delay 30ms"), {"proto": "udp", "port": 5000})
    assert kernel.tc_changes()[6][6:8] == ["handle", "21:"] and kernel.tc_changes()[7][5:9] == [
        "parent", "21:3", "handle", "31:"]


@pytest.mark.parametrize(("match", "families"), [
    ({"proto": "icmp", "port": None}, ["ip"]),
    ({"proto": "icmpv6", "port": None}, ["ipv6"]),
    ({"proto": "tcp", "port": None}, ["ip", "ipv6"]),
    ({"proto": 132, "port": 9000}, ["ip", "ip", "ipv6", "ipv6"]),
])
def test_filters_per_protocol(match: dict[str, Any], families: list[str]) -> None:
    cmds = filter_commands("eth0", 0x20, normalize_match(match) or {})
    assert [c[c.index("protocol") + 1] for c in cmds] == families
    number = {"icmp": 1, "icmpv6": 58, "tcp": 6}.get(match["proto"], match["proto"])
    assert all(c[c.index("u32") + 4] == str(number) for c in cmds)


def test_filter_readback_mismatch_is_caught(backend: KernelBackend, kernel: FakeKernel) -> None:
    real = kernel.add_filter

    def lossy(a: list[str]) -> subprocess.CompletedProcess[str]:
        return done(a) if "sport" in a else real(a)  # filters silently missing
    kernel.add_filter = lossy  # type: ignore[method-assign]
    with pytest.raises(ReadbackMismatch, match="filters to 20:3"):
        backend.apply("to-server", spec("delay 30ms"), {"proto": "udp", "port": 5000})
    assert kernel.tc_changes()[-1] == ["tc", "qdisc", "del", "dev", "eth0", "root"]


# ---------------------------------------------------------------------------------------------
# read-back, errors, duplicate, clear, stats


def test_readback_mismatch_raises_and_leaves_nothing_half_done(backend: KernelBackend, kernel: FakeKernel) -> None:
    kernel.tamper = {"corrupt": {"corrupt": 0.01, "correlation": 0}}  # a leftover option
    with pytest.raises(ReadbackMismatch, match=r"corrupt.corrupt: asked 0, kernel has 0.01"):
        backend.apply("to-server", spec("delay 10ms"), None)
    assert kernel.tc_changes()[-1] == ["tc", "qdisc", "del", "dev", "eth0", "root"]
    assert backend.stats().directions["to-server"].active is False


def test_tc_failure_is_reported_without_usage_text(backend: KernelBackend, kernel: FakeKernel) -> None:
    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if argv[:3] == ["tc", "qdisc", "replace"]:
            return done(argv, 1, err='What is "seed"?\nUsage: ... netem [ limit PACKETS ]\n')
        return kernel(argv)
    b = KernelBackend(*NETS, runner=runner)
    with pytest.raises(KernelBackendError) as info:
        b.apply("to-server", spec("delay 1ms seed 7"), None)
    assert 'What is "seed"?' in str(info.value) and "Usage" not in str(info.value)
    assert "6.3" in str(info.value)


def test_duplicate_conflict_falls_back_to_delete_then_add(backend: KernelBackend, kernel: FakeKernel) -> None:
    kernel.refuse_duplicate_mix = True
    backend.apply("to-server", spec("delay 10ms"), None)
    backend.apply("to-server", spec("duplicate 5%"), None)
    changes = kernel.tc_changes()
    assert [c[:3] for c in changes[1:]] == [["tc", "qdisc", "replace"], ["tc", "qdisc", "del"],
                                            ["tc", "qdisc", "replace"]]
    assert kernel.qdiscs["eth0"][0]["options"]["duplicate"] == {"duplicate": 0.05, "correlation": 0.0}


def test_clear_is_idempotent(backend: KernelBackend, kernel: FakeKernel) -> None:
    backend.clear("to-server")
    assert kernel.tc_changes() == []  # nothing of ours there: nothing deleted
    backend.apply("to-server", spec("delay 1ms"), {"proto": "tcp", "port": None})
    backend.clear("to-server")
    backend.clear("to-server")
    assert [c for c in kernel.tc_changes() if c[2] == "del"] == [["tc", "qdisc", "del", "dev", "eth0", "root"]]


def test_stats_read_the_netem_counters(backend: KernelBackend, kernel: FakeKernel) -> None:
    backend.apply("to-client", spec("loss 10%"), {"proto": "udp", "port": 53})
    netem_q = kernel.qdiscs["eth1"][1]
    netem_q.update({"bytes": 9000, "packets": 90, "drops": 10, "overlimits": 0, "requeues": 0, "backlog": 128,
                    "qlen": 2})
    kernel.qdiscs["eth1"][0].update({"bytes": 20000, "packets": 200, "drops": 10})
    st = backend.stats()
    assert ["tc", "-j", "-s", "qdisc", "show", "dev", "eth1"] in kernel.calls
    report = st.directions["to-client"]
    assert report.active is True and report.counters.passed == 90 and report.counters.dropped == 10
    d = st.to_dict()["directions"]["to-client"]  # the wire form keeps the old keys
    assert d["active"] is True and d["passed"] == 90 and d["dropped"] == 10
    assert d["netem"] == {"sent_packets": 90, "sent_bytes": 9000, "drops": 10, "overlimits": 0, "requeues": 0,
                          "backlog_bytes": 128, "backlog_packets": 2}
    assert d["root"]["kind"] == "prio" and d["root"]["sent_packets"] == 200
    assert d["match"] == {"proto": "udp", "port": 53} and d["spec"]["loss"]["pct"] == 10
    assert st.directions["to-server"].active is False and st.directions["to-server"].details["netem"] is None
    assert st.to_dict()["backend"] == "kernel" and st.to_dict()["interfaces"] == {"client": "eth1", "server": "eth0"}


def test_stats_report_what_tc_counts_and_none_for_the_rest(backend: KernelBackend, kernel: FakeKernel) -> None:
    backend.apply("to-server", spec("delay 10ms duplicate 5% corrupt 1% reorder 10%"), None)
    kernel.qdiscs["eth0"][0].update({"bytes": 15140, "packets": 10, "drops": 3, "overlimits": 4, "requeues": 5,
                                     "backlog": 1514, "qlen": 1})
    counters = backend.stats().directions["to-server"].counters
    assert (counters.passed, counters.dropped, counters.overlimits, counters.requeues, counters.backlog_bytes,
            counters.queue_depth, counters.bytes_out) == (10, 3, 4, 5, 1514, 1, 15140)
    # tc does not count these: None (never 0), and said so
    for name in ("seen", "duplicated", "corrupted", "reordered", "delayed", "ecn_marked", "dropped_loss",
                 "bytes_in", "errors"):
        assert getattr(counters, name) is None, name
    assert counters.measured == KernelBackend.MEASURED
    wire = backend.stats().to_dict()["directions"]["to-server"]
    assert wire["duplicated"] is None and "duplicated" in wire["not_measured"] and "passed" in wire["measured"]
    # nothing applied: what tc could count is 0, the rest still None
    idle = backend.stats().directions["to-client"].counters
    assert idle.passed == 0 and idle.dropped == 0 and idle.duplicated is None


def test_close_clears_both_directions(backend: KernelBackend, kernel: FakeKernel) -> None:
    backend.apply("to-client", spec("delay 1ms"), None)
    backend.apply("to-server", spec("delay 1ms"), None)
    backend.close()
    backend.close()
    assert [c for c in kernel.tc_changes() if c[2] == "del"] == [
        ["tc", "qdisc", "del", "dev", "eth0", "root"], ["tc", "qdisc", "del", "dev", "eth1", "root"]]
    with pytest.raises(KernelBackendError, match="closed"):
        backend.apply("to-server", spec("delay 1ms"), None)


# ---------------------------------------------------------------------------------------------
# the comparison itself (iproute2 6.1 JSON as measured in the VM)


def test_compare_tolerates_tick_rounding_and_tc_omissions() -> None:
    got = {"limit": 1000, "delay": {"delay": 0.000499, "jitter": 9.9e-05, "correlation": 0}, "ecn": False, "gap": 0}
    assert compare_netem_options(expected_netem_options(parse("delay 0.5ms 0.1ms")), got) == []
    got = {"limit": 1000, "duplicate": {"duplicate": 0.05, "correlation": 0.1}, "ecn": False, "gap": 0}
    assert compare_netem_options(expected_netem_options(parse("duplicate 5% 10%")), got) == []
    # What plain iproute2 6.1 leaves in the kernel for `duplicate 5% 10%` (it drops the
    # correlation; tc_command_args works around it): the read-back must catch it.
    got = {"limit": 1000, "duplicate": {"duplicate": 0.05, "correlation": 0}, "ecn": False, "gap": 0}
    assert compare_netem_options(expected_netem_options(parse("duplicate 5% 10%")), got) == [
        "duplicate.correlation: asked 0.1, kernel has 0"]
    got = {"limit": 1000, "rate": {"rate": 125000, "packetoverhead": 20, "cellsize": 48, "celloverhead": 5},
           "ecn": False, "gap": 0}
    assert compare_netem_options(expected_netem_options(parse("rate 1mbit 20 48 5")), got) == []
    got = {"limit": 1000, "delay": {"delay": 0.01, "jitter": 0, "correlation": 0},
           "reorder": {"reorder": 0.25, "correlation": 0.5}, "ecn": False, "gap": 5}
    assert compare_netem_options(expected_netem_options(parse("delay 10ms reorder 25% 50% gap 5")), got) == []
    got = {"limit": 1000, "slot": {"distribution": 0.01, "jitter": 0.002, "packets": 0, "bytes": 0},
           "ecn": False, "gap": 0}
    assert compare_netem_options(expected_netem_options(parse("slot distribution normal 10ms 2ms")), got) == []


def test_a_zero_valued_section_is_not_a_false_mismatch() -> None:
    """Issue #9: tc's JSON omits a section whose main value is 0 (iproute2 prints delay only
    for a latency above 0, loss-random and corrupt only above 0%), so their jitter or
    correlation cannot be read back; the comparison used to report them as mismatches."""
    plain = {"limit": 1000, "ecn": False, "gap": 0}
    for text in ("delay 0ms 5ms", "loss 0% 25%", "corrupt 0% 25%", "delay 0ms 5ms 10% loss 0% 25% corrupt 0% 1%"):
        assert compare_netem_options(expected_netem_options(parse(text)), plain) == [], text
    # A section the kernel should show is still checked: losing the delay is a mismatch.
    assert compare_netem_options(expected_netem_options(parse("delay 1ms 5ms")), plain) == [
        "delay.delay: asked 0.001, kernel has 0.0", "delay.jitter: asked 0.005, kernel has 0.0"]


def test_compare_reports_every_difference() -> None:
    exp = expected_netem_options(parse("limit 500 delay 50ms loss 5% ecn"))
    got = {"limit": 1000, "delay": {"delay": 0.051, "jitter": 0, "correlation": 0},
           "loss-random": {"loss": 0.05, "correlation": 0}, "corrupt": {"corrupt": 0.01, "correlation": 0},
           "slot": {"min-delay": 0.01, "max-delay": 0.01, "packets": 0, "bytes": 0}, "ecn": False, "gap": 0}
    problems = compare_netem_options(exp, got)
    assert any(p.startswith("limit: asked 500") for p in problems)
    assert any(p.startswith("ecn: asked True") for p in problems)
    assert any(p.startswith("delay.delay: asked 0.05") for p in problems)
    assert any(p.startswith("corrupt.corrupt") for p in problems)
    assert any(p.startswith("slot: not asked") for p in problems)
    assert len(problems) == 5


# ---------------------------------------------------------------------------------------------
# the probe


@pytest.mark.parametrize(("rc", "stderr", "ok", "reason"), [
    (0, "", True, "kernel has sch_netem (tc qdisc add ... netem worked)"),
    (2, "Error: Specified qdisc kind is unknown.\n", False,
     "kernel has no sch_netem (tc: Specified qdisc kind is unknown)"),
    (2, "RTNETLINK answers: Operation not permitted\n", False,
     "not allowed to change qdiscs, needs CAP_NET_ADMIN (tc: RTNETLINK answers: Operation not permitted)"),
    (1, "something odd\n", False, "tc netem failed (exit 1): something odd"),
])
def test_probe_reason(rc: int, stderr: str, ok: bool, reason: str) -> None:
    assert probe_reason(rc, stderr) == (ok, reason)


class ProbeRunner:
    def __init__(self, *, dummy: bool = True, veth: bool = True, tc_rc: int = 0, tc_err: str = "",
                 tc_missing: bool = False) -> None:
        self.dummy, self.veth, self.tc_rc, self.tc_err, self.tc_missing = dummy, veth, tc_rc, tc_err, tc_missing
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        a = list(argv)
        self.calls.append(a)
        if a[:3] == ["ip", "link", "add"]:
            ok = self.dummy if a[-1] == "dummy" else self.veth
            return done(a, 0 if ok else 2, err="" if ok else "Error: Unknown device type.\n")
        if a[0] == "tc":
            if self.tc_missing:
                raise FileNotFoundError(2, "No such file or directory", "tc")
            return done(a, self.tc_rc, err=self.tc_err)
        return done(a)


def test_probe_uses_a_throwaway_interface_and_removes_it() -> None:
    r = ProbeRunner(tc_rc=2, tc_err="Error: Specified qdisc kind is unknown.\n")
    assert probe_kernel_netem(r) == (False, "kernel has no sch_netem (tc: Specified qdisc kind is unknown)")
    name = r.calls[0][3]
    assert len(name) <= 15 and name.startswith("nbprobe")
    assert r.calls == [["ip", "link", "add", name, "type", "dummy"],
                       ["tc", "qdisc", "add", "dev", name, "root", "netem", "delay", "1ms"],
                       ["ip", "link", "del", name]]


def test_probe_falls_back_to_veth_then_gives_up() -> None:
    r = ProbeRunner(dummy=False)
    assert probe_kernel_netem(r)[0] is True
    assert r.calls[1][-4:] == ["veth", "peer", "name", r.calls[1][3][:14] + "p"]
    assert r.calls[-1][:3] == ["ip", "link", "del"]
    ok, reason = probe_kernel_netem(ProbeRunner(dummy=False, veth=False))
    assert not ok and reason.startswith("cannot create a throwaway interface")


def test_probe_without_tc() -> None:
    r = ProbeRunner(tc_missing=True)
    ok, reason = probe_kernel_netem(r)
    assert not ok and "iproute2 is not installed" in reason
    assert r.calls[-1][:3] == ["ip", "link", "del"]
