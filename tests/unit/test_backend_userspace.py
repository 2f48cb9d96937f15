"""The userspace backend without root: the exact ip, ethtool, iptables and ip6tables commands it
runs for apply, clear and close, against a fake runner, with fake NFQUEUE workers.
(The real thing, with NFQUEUE and raw sockets, runs in tests/netns.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from netbed_core.direction_stats import COUNTERS
from netbed_core.netem import parse
from netbed_router.backend import Backend
from netbed_router.backend_kernel import KernelBackend
from netbed_router.backend_userspace import UserspaceBackend
from netbed_router.counters import EngineCounters
from netbed_router.engine import Engine, EngineConfig, HeldQueue

NETS = ("10.77.0.0/24", "10.77.1.0/24", "fd00:77::/64", "fd00:77:0:1::/64")
# the server side is eth0 and comes first: names say nothing, addresses decide
ADDRS = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.77.1.2", "prefixlen": 24}]},
    {"ifname": "eth1", "addr_info": [{"family": "inet", "local": "10.77.0.2", "prefixlen": 24}]},
]
OFFLOADS = ["gro", "off", "gso", "off", "tso", "off"]


def done(argv: Sequence[str], rc: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(list(argv), rc, out, err)


class FakeHost:
    """ip, ethtool, iptables(-restore) and ip6tables(-restore): records each command (with its
    stdin) and keeps whether FORWARD jumps to the chain, as `-C`/`-I`/`-D` would see it."""

    def __init__(self, missing: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.missing = missing
        self.jump = {"iptables": False, "ip6tables": False}

    def __call__(self, argv: Sequence[str], *, input: str | None = None) -> subprocess.CompletedProcess[str]:
        a = list(argv)
        assert all(isinstance(x, str) for x in a), a
        if a[0] in self.missing or a[0].removesuffix("-restore") in self.missing:
            raise FileNotFoundError(2, "No such file or directory", a[0])
        self.calls.append((a, input))
        if a == ["ip", "-j", "addr", "show"]:
            return done(a, out=json.dumps(ADDRS))
        if a[0] == "ethtool":
            return done(a)
        tool = a[0].removesuffix("-restore")
        if a[0].endswith("-restore"):
            assert a[1:] == ["--noflush", "-w"] and input is not None
            return done(a)
        if a[1:] == ["-w", "-C", "FORWARD", "-j", "NETBED"]:
            return done(a, 0 if self.jump[tool] else 1)
        if a[1:] == ["-w", "-I", "FORWARD", "1", "-j", "NETBED"]:
            self.jump[tool] = True
            return done(a)
        if a[1:] == ["-w", "-D", "FORWARD", "-j", "NETBED"]:
            had = self.jump[tool]
            self.jump[tool] = False
            return done(a, 0 if had else 1, err="" if had else "Bad rule")
        if a[1:3] == ["-w", "-F"] or a[1:3] == ["-w", "-X"]:
            return done(a)
        raise AssertionError(f"unexpected command {a}")

    def commands(self) -> list[list[str]]:
        return [a for a, _ in self.calls]

    def take(self) -> list[tuple[list[str], str | None]]:
        """The calls since the last take()."""
        calls, self.calls = self.calls, []
        return calls


class FakeWorker:
    """A QueueWorker's surface without a netlink socket: holds an engine, never sees a packet."""

    def __init__(self, queue_num: int, name: str) -> None:
        self.queue_num, self.name = queue_num, name
        self.held = HeldQueue()
        self.engine = Engine(EngineConfig(seed=0), self.held, EngineCounters())
        self.alive = True
        self.fatal: str | None = None
        self.flushed = 0
        self.stopped = False

    def set_engine(self, engine: Engine) -> None:
        self.engine = engine

    def flush(self, timeout_s: float = 2.0) -> bool:
        self.flushed += 1
        return True

    def stop(self) -> None:
        self.stopped = True
        self.alive = False


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def workers() -> list[FakeWorker]:
    return []


@pytest.fixture
def backend(host: FakeHost, workers: list[FakeWorker]) -> UserspaceBackend:
    def factory(queue_num: int, name: str) -> Any:
        w = FakeWorker(queue_num, name)
        workers.append(w)
        return w
    b = UserspaceBackend(*NETS, runner=host, worker_factory=factory)
    host.take()
    return b


def spec(text: str) -> dict[str, Any]:
    return parse(text).to_dict()


def restore(tool: str, *rules: str) -> tuple[list[str], str]:
    """The iptables-restore call that makes the NETBED chain hold exactly `rules`."""
    lines = ["*filter", ":NETBED - [0:0]", *(f"-A NETBED {r}" for r in rules), "COMMIT"]
    return [f"{tool}-restore", "--noflush", "-w"], "\n".join(lines) + "\n"


def jump(tool: str, *args: str) -> tuple[list[str], None]:
    return [tool, "-w", *args], None


# ---------------------------------------------------------------------------------------------
# construction


def test_finds_interfaces_by_address_and_turns_offloads_off(host: FakeHost) -> None:
    b = UserspaceBackend(*NETS, runner=host, worker_factory=FakeWorker)  # type: ignore[arg-type]
    assert (b.client_if, b.server_if) == ("eth1", "eth0")
    assert host.take() == [
        (["ip", "-j", "addr", "show"], None),
        (["ethtool", "-K", "eth1", *OFFLOADS], None),
        (["ethtool", "-K", "eth0", *OFFLOADS], None),
    ]
    assert b.offloads == {"eth1": "ok", "eth0": "ok"}


def test_missing_ethtool_is_recorded_not_fatal() -> None:
    b = UserspaceBackend(*NETS, runner=FakeHost(missing=frozenset({"ethtool"})), worker_factory=FakeWorker)  # type: ignore[arg-type]
    assert b.offloads == {"eth1": "ethtool not installed", "eth0": "ethtool not installed"}


def test_is_a_backend_with_the_kernel_backends_signatures() -> None:
    assert issubclass(UserspaceBackend, Backend) and issubclass(KernelBackend, Backend)
    for method in ("apply", "clear", "stats", "close"):
        assert getattr(UserspaceBackend, method).__annotations__ == getattr(KernelBackend, method).__annotations__


# ---------------------------------------------------------------------------------------------
# apply / clear / close: the exact commands


def test_apply_queues_the_direction_with_one_restore_and_a_jump(backend: UserspaceBackend, host: FakeHost,
                                                                 workers: list[FakeWorker]) -> None:
    applied = backend.apply("to-server", spec("delay 10ms seed 7"), None)
    assert applied.queued is True and applied.seed == 7 and applied.direction == "to-server"
    rule = "-i eth1 -o eth0 -j NFQUEUE --queue-num 0"
    assert host.take() == [
        restore("iptables", rule),
        jump("iptables", "-C", "FORWARD", "-j", "NETBED"),
        jump("iptables", "-I", "FORWARD", "1", "-j", "NETBED"),
        restore("ip6tables", rule),
        jump("ip6tables", "-C", "FORWARD", "-j", "NETBED"),
        jump("ip6tables", "-I", "FORWARD", "1", "-j", "NETBED"),
    ]
    assert [(w.queue_num, w.name) for w in workers] == [(0, "to-server")]
    assert workers[0].engine.seed == 7


def test_apply_with_a_match_and_both_directions(backend: UserspaceBackend, host: FakeHost) -> None:
    backend.apply("to-client", spec("loss 5%"), {"proto": "udp", "port": 5000})
    host.take()
    backend.apply("to-server", spec("delay 1ms"), {"proto": "icmp", "port": None})
    to_server4 = "-i eth1 -o eth0 -p icmp -j NFQUEUE --queue-num 0"  # icmp: IPv4 only
    to_client = "-i eth0 -o eth1 -p 17 -m multiport --ports 5000 -j NFQUEUE --queue-num 1"
    # the IPv4 chain is rewritten whole; the IPv6 one (icmp has no IPv6 rule) is unchanged, so left
    # alone; the jumps are there already, so no -C/-I
    assert host.take() == [restore("iptables", to_server4, to_client)]


def test_clear_rewrites_the_chain_and_removes_the_jump_when_nothing_is_left(backend: UserspaceBackend,
                                                                             host: FakeHost,
                                                                             workers: list[FakeWorker]) -> None:
    backend.apply("to-server", spec("delay 10ms"), None)
    backend.apply("to-client", spec("delay 10ms"), None)
    host.take()
    backend.clear("to-server")
    assert host.take() == [restore("iptables", "-i eth0 -o eth1 -j NFQUEUE --queue-num 1"),
                           restore("ip6tables", "-i eth0 -o eth1 -j NFQUEUE --queue-num 1")]
    backend.clear("to-client")
    assert host.take() == [
        restore("iptables"),
        jump("iptables", "-D", "FORWARD", "-j", "NETBED"),
        jump("iptables", "-D", "FORWARD", "-j", "NETBED"),  # until it fails: no jump left
        restore("ip6tables"),
        jump("ip6tables", "-D", "FORWARD", "-j", "NETBED"),
        jump("ip6tables", "-D", "FORWARD", "-j", "NETBED"),
    ]
    backend.clear("to-client")  # idempotent: nothing to change
    assert host.take() == []
    assert all(w.engine.noop for w in workers)


def test_noop_spec_clears_instead_of_queueing(backend: UserspaceBackend, host: FakeHost) -> None:
    applied = backend.apply("to-server", spec("limit 100"), None)
    assert applied.queued is False
    assert host.take() == []


def test_close_removes_jump_and_chain_and_stops_the_workers(backend: UserspaceBackend, host: FakeHost,
                                                           workers: list[FakeWorker]) -> None:
    backend.apply("to-server", spec("delay 10ms"), None)
    host.take()
    backend.close()
    assert host.take() == [
        jump("iptables", "-D", "FORWARD", "-j", "NETBED"),
        jump("iptables", "-D", "FORWARD", "-j", "NETBED"),
        jump("iptables", "-F", "NETBED"),
        jump("iptables", "-X", "NETBED"),
        jump("ip6tables", "-D", "FORWARD", "-j", "NETBED"),
        jump("ip6tables", "-D", "FORWARD", "-j", "NETBED"),
        jump("ip6tables", "-F", "NETBED"),
        jump("ip6tables", "-X", "NETBED"),
    ]
    assert all(w.stopped for w in workers)
    backend.close()  # idempotent
    assert host.take() == []
    with pytest.raises(RuntimeError, match="closed"):
        backend.apply("to-server", spec("delay 1ms"), None)


def test_ipv6_rules_are_best_effort(workers: list[FakeWorker]) -> None:
    host = FakeHost(missing=frozenset({"ip6tables"}))
    b = UserspaceBackend(*NETS, runner=host, worker_factory=FakeWorker)  # type: ignore[arg-type]
    b.apply("to-server", spec("delay 1ms"), None)
    assert [a[0] for a in host.commands()].count("iptables-restore") == 1
    assert b.stats().details["ipv6_rules_error"] is not None


def test_bad_input_changes_nothing(backend: UserspaceBackend, host: FakeHost) -> None:
    with pytest.raises(ValueError, match="direction"):
        backend.apply("sideways", spec("delay 1ms"), None)
    with pytest.raises(ValueError, match="match"):
        backend.apply("to-server", spec("delay 1ms"), {"proto": "icmp", "port": 80})
    assert host.take() == []


def test_a_failed_restore_raises_and_leaves_the_direction_inactive(host: FakeHost) -> None:
    def failing(argv: Sequence[str], *, input: str | None = None) -> subprocess.CompletedProcess[str]:
        if argv[0] == "iptables-restore":
            return done(argv, 1, err="iptables-restore: line 3 failed")
        return host(argv, input=input)
    b = UserspaceBackend(*NETS, runner=failing, worker_factory=FakeWorker)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="line 3 failed"):
        b.apply("to-server", spec("delay 1ms"), None)
    assert b.stats().directions["to-server"].active is False


# ---------------------------------------------------------------------------------------------
# stats: every counter the engine keeps, None for the qdisc's


def test_stats_report_every_engine_counter_and_none_for_qdisc_counters(backend: UserspaceBackend,
                                                                       workers: list[FakeWorker]) -> None:
    backend.apply("to-server", spec("duplicate 5%"), {"proto": "udp", "port": 53})
    c = workers[0].engine.stats
    c.seen, c.passed, c.duplicated, c.dropped_loss, c.corrupted = 100, 104, 5, 1, 2
    st = backend.stats()
    assert st.backend == "userspace"
    report = st.directions["to-server"]
    assert report.active is True and report.match == {"proto": "udp", "port": 53}
    counters = report.counters
    assert (counters.seen, counters.passed, counters.duplicated, counters.dropped, counters.dropped_loss,
            counters.corrupted, counters.reordered) == (100, 104, 5, 1, 1, 2, 0)
    assert counters.overlimits is None and counters.requeues is None and counters.backlog_bytes is None
    assert counters.measured == UserspaceBackend.MEASURED == frozenset(COUNTERS) - {"overlimits", "requeues",
                                                                                    "backlog_bytes"}
    # the wire form keeps the old keys
    wire = st.to_dict()
    d = wire["directions"]["to-server"]
    assert d["duplicated"] == 5 and d["dropped_by_cause"]["loss"] == 1 and d["queue_num"] == 0
    assert d["worker_alive"] is True and d["seed"] == workers[0].engine.seed
    assert wire["backend"] == "userspace" and wire["fail_mode"] == "closed"
    assert wire["directions"]["to-client"]["active"] is False and wire["directions"]["to-client"]["seen"] == 0
