"""The userspace impairment engine on a real kernel, in network namespaces made here.

Topology (netbed_testkit.topology; created by the ``topo`` fixture and removed afterwards):

    client  cr ---- rb  router  ra ---- sr  server

The router runs its real agent (``python3 -m netbed_agent --role router``, userspace backend)
inside its namespace, driven over the agent protocol (see conftest.py), so interface
discovery, iptables/ip6tables rules, NFQUEUE and raw-socket injection are the real ones.
Test traffic is UDP between sockets this process opens inside the client and server
namespaces (netbed_testkit.traffic); nothing leaves the namespaces.
"""

from __future__ import annotations

import hashlib
import socket
import statistics
import subprocess
import sys
import threading
import time

from router_agent import RouterAgent

from netbed.stats import rate_in_interval
from netbed_core.netem import parse
from netbed_router.engine import Engine, EngineConfig
from netbed_testkit.topology import Topology
from netbed_testkit.traffic import UdpFlow

PORT = 47000
UDP_MATCH = f"udp:{PORT}"


def flow(topo: Topology, to_server: bool = True, v6: bool = False, size_bytes: int = 64,
         filler: bytes | None = None) -> UdpFlow:
    """UDP on PORT from the client to the server (or back), IPv4 or IPv6."""
    src, dst = (topo.client, topo.server) if to_server else (topo.server, topo.client)
    return UdpFlow(src, dst, topo.address(dst, v6), PORT, size_bytes=size_bytes, filler=filler)


# ----------------------------------------------------------------------------------------
def test_passthrough_delay_median(topo: Topology, router: RouterAgent) -> None:
    with flow(topo) as f:
        f.send(200, 0.001)
        f.settle(0.2)
        base = statistics.median(f.one_way_ms())
        assert len(f.received) == 200
        router.impair("to-server", "delay 20ms seed 1", UDP_MATCH)
        f.clear()
        f.send(300, 0.002)
        f.settle(0.2)
        assert len(f.received) == 300
        added = statistics.median(f.one_way_ms()) - base
        assert abs(added - 20.0) <= max(0.5, 0.02 * 20.0), f"added delay {added:.3f} ms, base {base:.3f} ms"
        st = router.stats("to-server")
        assert st["delayed"] == 300 and st["passed"] == 300 and st["errors"] == 0, st


def test_loss_binomial_and_replay(topo: Topology, router: RouterAgent) -> None:
    n, netem = 10000, "loss 10% seed 4242"
    router.impair("to-server", netem, UDP_MATCH)
    with flow(topo) as f:
        f.send(n, 0.00002)
        f.settle(0.3)
        got = {r.seq for r in f.received}
        lost = n - len(got)
        ok, (lo, hi) = rate_in_interval(lost, n, 0.10)
        assert ok, f"{lost} lost of {n}, 99% CI [{lo:.4f}, {hi:.4f}] excludes 10%"
        st = router.stats("to-server")
        assert st["seen"] == n and st["dropped_by_cause"]["loss"] == lost, st
        # Same seed, same packet order: the offline engine predicts exactly which were lost.
        eng = Engine(EngineConfig.from_dict(parse(netem).to_dict()))
        predicted = {i for i in range(n) if not eng.on_packet(i, b"", 92, 0)}
        assert predicted == set(range(n)) - got


def test_duplicate(topo: Topology, router: RouterAgent) -> None:
    n = 4000
    router.impair("to-server", "duplicate 30% seed 7", UDP_MATCH)
    with flow(topo) as f:
        f.send(n, 0.00005)
        f.settle(0.3, until_complete=False)  # copies of the last datagrams may still be on their way
        seqs = [r.seq for r in f.received]
        dups = len(seqs) - len(set(seqs))
        assert len(set(seqs)) == n
        ok, (lo, hi) = rate_in_interval(dups, n, 0.30)
        assert ok, f"{dups} duplicates of {n}, 99% CI [{lo:.4f}, {hi:.4f}] excludes 30%"
        assert router.stats("to-server")["duplicated"] == dups
        # A copy is byte-identical to its original.
        by_seq: dict[int, bytes] = {}
        for r in f.received:
            assert by_seq.setdefault(r.seq, r.data) == r.data


def test_corrupt_flips_one_bit(topo: Topology, router: RouterAgent) -> None:
    n = 300
    router.impair("to-server", "corrupt 100% seed 3", UDP_MATCH)
    with flow(topo, size_bytes=1000, filler=bytes(996)) as f:
        SO_NO_CHECK = 11  # IPv4 UDP without checksum, so the receiver gets the corrupted bytes
        f.tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        for seq in range(n):
            f.send_one(seq)
            time.sleep(0.0002)
        f.settle(0.2)
        assert router.stats("to-server")["corrupted"] == n
        # A flip in the sequence number makes a datagram foreign: it counts, as one without
        # a payload flip.  A flip in the UDP header is not visible as a payload flip either.
        arrived = [r.data for r in f.received] + f.foreign
        one_bit = sum(sum(bin(b).count("1") for b in data[4:]) == 1 for data in arrived)
        assert len(arrived) >= 0.9 * n
        assert one_bit >= 0.9 * len(arrived)


def test_directions_independent_and_ipv6(topo: Topology, router: RouterAgent) -> None:
    router.impair("to-client", "partition", UDP_MATCH)
    router.impair("to-server", "delay 5ms seed 5", UDP_MATCH)
    with flow(topo) as up4, flow(topo, v6=True) as up6, flow(topo, to_server=False) as down:
        for f in (up4, up6, down):
            f.send(200, 0.0005)
        for f in (up4, up6, down):
            f.settle(0.15)
        assert len(up4.received) == 200 and len(up6.received) == 200
        assert statistics.median(up6.one_way_ms()) >= 5.0
        assert len(down.received) == 0
        assert router.stats("to-client")["dropped_by_cause"]["partition"] == 200
        assert router.stats("to-server")["dropped"] == 0


def test_clear_mid_traffic_and_apply_latency(topo: Topology, router: RouterAgent) -> None:
    router.impair("to-server", "delay 300ms seed 9", UDP_MATCH)
    with flow(topo) as f:
        f.send(100, 0.001)  # all of these are held when clear() runs
        router.clear("to-server")
        t_clear = time.time_ns()
        f.send(100, 0.001, start=100)
        f.settle(0.2)
        assert sorted(r.seq for r in f.received) == list(range(200)), "clear must release held packets, not drop them"
        assert statistics.median(r.one_way_ms for r in f.received if r.seq >= 100) < 2.0
        assert all(r.recv_ns < t_clear + 50e6 for r in f.received if r.seq < 100)
        st = router.stats("to-server")
        assert not st["active"] and st["errors"] == 0

        # Time from impair() returning to the impairment acting: stream every 0.2 ms, then
        # partition; nothing sent more than 2 ms after impair() returned may arrive.
        f.clear()
        stop = threading.Event()

        def stream() -> None:
            seq = 1000
            while not stop.is_set():
                f.send_one(seq)
                seq += 1
                time.sleep(0.0002)

        t = threading.Thread(target=stream)
        t.start()
        time.sleep(0.1)
        router.impair("to-server", "partition", UDP_MATCH)
        t_applied = time.time_ns()  # after the answer: >= the agent's own return time
        time.sleep(0.1)
        stop.set()
        t.join()
        f.settle(0.2)
        late = [(r.sent_ns - t_applied) / 1e6 for r in f.received if r.sent_ns > t_applied]
        assert not late or max(late) <= 2.0, f"sent {max(late):.3f} ms after impair() still delivered"


def test_rate_and_limit(topo: Topology, router: RouterAgent) -> None:
    # 1000-byte datagrams (1028 B IP) at 8 Mbit/s: (1028 + 14) * 8 / 8e6 s = 1.042 ms each.
    router.impair("to-server", "rate 8mbit limit 50 seed 11", UDP_MATCH)
    with flow(topo, size_bytes=1000) as f:
        f.send(200)  # a burst far faster than the rate
        f.settle(0.3)
        st = router.stats("to-server")
        assert st["dropped_by_cause"]["limit"] >= 100, st
        assert st["queue_depth_max"] == 50
        arrivals = sorted(r.recv_ns for r in f.received)
        gaps = [(b - a) / 1e6 for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert abs(statistics.median(gaps) - 1.042) < 0.1, statistics.median(gaps)


TCP_RX = """
import hashlib, socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 47050)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while chunk := c.recv(1 << 20):
    h.update(chunk); n += len(chunk)
print(n, h.hexdigest(), flush=True)
"""
TCP_TX = """
import socket, sys
c = socket.create_connection((sys.argv[1], 47050))
block = bytes(range(256)) * 4096
for _ in range(16):
    c.sendall(block)
c.close()
"""


def test_gso_units_under_a_fixed_delay_arrive_intact_and_are_decided_whole(
    topo: Topology, router: RouterAgent
) -> None:
    """delay 1ms is GSO-safe: the queue takes the client's TSO super-packets whole
    (NFQA_CFG_F_GSO, partial checksums left to the kernel) and 16 MiB of TCP arrive byte for
    byte; the engine saw units larger than one wire packet (the veth MTU is 1500 bytes)."""
    router.impair("to-server", "delay 1ms seed 1", "tcp:47050")
    rx = subprocess.Popen(["ip", "netns", "exec", topo.server, sys.executable, "-c", TCP_RX],
                          stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", topo.client, sys.executable, "-c", TCP_TX,
                        topo.address(topo.server)], check=True, timeout=120)
        out, _ = rx.communicate(timeout=60)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    sent = (bytes(range(256)) * 4096) * 16
    n, digest = out.split()
    assert (int(n), digest) == (len(sent), hashlib.sha256(sent).hexdigest())
    st = router.stats("to-server")
    assert st["errors"] == 0 and st["delayed"] == st["seen"], st
    assert st["bytes_in"] / st["seen"] > 1500, f"no unit above one wire packet: {st['bytes_in']} B in {st['seen']}"
    sched = st["engine_process"]["scheduling"]
    assert sched["description"].startswith("real-time scheduling: "), sched
