"""The nfnetlink_queue protocol (NFQUEUE) over a raw netlink socket, stdlib only.

The router image has no Python binding for libnetfilter_queue, so this module speaks the
protocol directly (see linux ``include/uapi/linux/netfilter/nfnetlink_queue.h``):

* ``NFQNL_MSG_CONFIG``  binds a queue number to this socket, sets copy mode/range,
  the kernel queue length and flags;
* ``NFQNL_MSG_PACKET``  (kernel -> us) carries one queued packet: ``NFQA_PACKET_HDR``
  (packet id), ``NFQA_PAYLOAD`` (the IP packet), interface indexes;
* ``NFQNL_MSG_VERDICT`` (us -> kernel) accepts/drops one packet, optionally replacing
  its contents (``NFQA_PAYLOAD`` = mangled packet);
* ``NFQNL_MSG_VERDICT_BATCH`` applies one verdict to every queued packet with an id
  up to and including the given one.

Byte order: the netlink and attribute headers are host order; everything inside the
NFQ structures (packet id, verdict, queue number in ``nfgenmsg.res_id``) is big-endian.

Every kernel packet message is its own netlink datagram, so one ``recv`` returns one
packet; throughput comes from cheap parsing and from sending many verdicts in a single
``sendto`` (netlink accepts several messages per datagram).
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

from netbed_core.verdicts import NF_ACCEPT

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = (NFNL_SUBSYS_QUEUE << 8) | 0
NFQNL_MSG_VERDICT = (NFNL_SUBSYS_QUEUE << 8) | 1
NFQNL_MSG_CONFIG = (NFNL_SUBSYS_QUEUE << 8) | 2
NFQNL_MSG_VERDICT_BATCH = (NFNL_SUBSYS_QUEUE << 8) | 3

# nfqnl_attr_type
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_MARK = 3
NFQA_TIMESTAMP = 4
NFQA_IFINDEX_INDEV = 5
NFQA_IFINDEX_OUTDEV = 6
NFQA_PAYLOAD = 10
NFQA_CAP_LEN = 13
NFQA_SKB_INFO = 14

# nfqnl_attr_config
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5

NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2

NFQNL_COPY_NONE = 0
NFQNL_COPY_META = 1
NFQNL_COPY_PACKET = 2

NFQA_CFG_F_FAIL_OPEN = 1 << 0
NFQA_CFG_F_CONNTRACK = 1 << 1
NFQA_CFG_F_GSO = 1 << 2

# NFQA_SKB_INFO flags (be32): what the kernel says about the queued skb.
NFQA_SKB_CSUMNOTREADY = 1 << 0  # CHECKSUM_PARTIAL: the L4 checksum is not filled in yet
NFQA_SKB_GSO = 1 << 1  # a GSO super-packet: several wire packets, segmented after the verdict
NFQA_SKB_CSUM_NOTVERIFIED = 1 << 2  # the checksum was not verified (the bytes are complete)
#: Flags that make a payload unfit to rewrite or to send as one wire packet.  Only seen with
#: NFQA_CFG_F_GSO: without it the kernel segments GSO skbs and fills in partial checksums
#: (skb_checksum_help) before queueing, and a verdict that rewrites a GSO skb's payload would
#: set CHECKSUM_NONE on it, so its segments would leave with wrong checksums.
NFQA_SKB_NOT_WHOLE = NFQA_SKB_CSUMNOTREADY | NFQA_SKB_GSO

MAX_COPY_RANGE = 0xFFFF

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NLATTR = struct.Struct("=HH")  # len, type
_BE32 = struct.Struct(">I")
_MSG_HDR = struct.Struct("=IH")  # len, type: what the receive loop needs


def _nla(atype: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return _NLATTR.pack(length, atype) + payload + b"\0" * ((-length) % 4)


def _nfgen(queue_num: int, family: int = socket.AF_UNSPEC) -> bytes:
    """struct nfgenmsg: family, version NFNETLINK_V0, res_id (big-endian queue number)."""
    return struct.pack("=BB", family, 0) + struct.pack(">H", queue_num)


class NfQueueError(OSError):
    """The kernel rejected a configuration request (errno from NLMSG_ERROR)."""


class NfQueue:
    """One bound NFQUEUE queue on its own NETLINK_NETFILTER socket.

    Not thread-safe: one thread receives and issues verdicts.  ``fileno()`` is usable
    with ``select``.
    """

    def __init__(
        self,
        queue_num: int,
        *,
        copy_range: int = MAX_COPY_RANGE,
        max_len: int = 4096,
        rcvbuf_bytes: int = 32 << 20,
        fail_open: bool = False,
        recv_timeout_s: float | None = 0.1,
    ) -> None:
        """Bind ``queue_num`` (0..65535) in the current network namespace.

        copy_range: bytes of each packet copied to userspace (0..65535).
        max_len: kernel queue length in packets (queued + awaiting verdict); beyond it the
            kernel drops (or, with ``fail_open``, accepts) new packets.
        rcvbuf_bytes: socket receive buffer, forced past rmem_max (needs CAP_NET_ADMIN).
        recv_timeout_s: SO_RCVTIMEO so a blocking ``recv`` wakes up periodically
            (to notice a stop request) without a poll syscall per packet.
        """
        if not 0 <= queue_num <= 0xFFFF:
            raise ValueError(f"queue_num must be 0..65535, got {queue_num}")
        self.queue_num = queue_num
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._seq = 0
        self._bound = False
        # Packet messages read while waiting for a config ACK; see _wait_ack.
        self.pending: list[bytes] = []
        try:
            self._tune_socket(rcvbuf_bytes, recv_timeout_s)
            self.sock.bind((0, 0))
            self.portid: int = self.sock.getsockname()[0]
            # BIND fails with EBUSY if another socket owns the queue; a dead owner's binding
            # is released by the kernel when its socket closes.
            self._config(_nla(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
            self._bound = True
            self.set_copy_range(copy_range)
            self.set_max_len(max_len)
            flags = NFQA_CFG_F_FAIL_OPEN if fail_open else 0
            self._config(
                _nla(NFQA_CFG_FLAGS, _BE32.pack(flags))
                + _nla(NFQA_CFG_MASK, _BE32.pack(NFQA_CFG_F_FAIL_OPEN))
            )
        except BaseException:
            self.close()
            raise
        self.gso = False
        self._verdict_prefix = self._verdict_prefix_for(NFQNL_MSG_VERDICT, 0)
        self._batch_prefix = self._verdict_prefix_for(NFQNL_MSG_VERDICT_BATCH, 0)

    # -- configuration -------------------------------------------------------------------
    def _tune_socket(self, rcvbuf_bytes: int, recv_timeout_s: float | None) -> None:
        for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf_bytes)
                break
            except OSError:
                continue
        for opt in (SO_SNDBUFFORCE, socket.SO_SNDBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
                break
            except OSError:
                continue
        # Without this, an overrun receive buffer makes recv() fail with ENOBUFS; the kernel
        # then drops queued packets anyway (fail-closed), so we just keep reading.
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        except OSError:
            pass
        if recv_timeout_s is not None:
            sec = int(recv_timeout_s)
            usec = int((recv_timeout_s - sec) * 1e6)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", sec, usec))

    def _config(self, attrs: bytes) -> None:
        """Send one NFQNL_MSG_CONFIG with ACK requested and wait for the kernel's answer."""
        self._seq += 1
        body = _nfgen(self.queue_num) + attrs
        msg = _NLMSGHDR.pack(16 + len(body), NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, self._seq, 0) + body
        self.sock.sendto(msg, (0, 0))
        self._wait_ack(self._seq)

    def _wait_ack(self, seq: int) -> None:
        buf = bytearray(1 << 16)
        # Reconfiguring a live queue: packet messages may arrive before the ACK.  They are
        # kept (as bytes) in ``self.pending`` for the receiving loop to process first, so
        # no packet is stranded without a verdict or let through unimpaired.
        while True:
            try:
                n = self.sock.recv_into(buf)
            except BlockingIOError as exc:
                raise NfQueueError(errno.ETIMEDOUT, "no answer from nfnetlink_queue") from exc
            for mtype, seq_in, off, mlen in _iter_msgs(buf, n):
                if mtype == NLMSG_ERROR and seq_in == seq:
                    (err,) = struct.unpack_from("=i", buf, off + 16)
                    if err != 0:
                        raise NfQueueError(-err, f"nfqueue config: {errno.errorcode.get(-err, err)}")
                    return
                if mtype == NFQNL_MSG_PACKET:
                    self.pending.append(bytes(buf[off : off + mlen]))

    def set_copy_range(self, copy_range: int) -> None:
        """Copy the first ``copy_range`` bytes (0..65535) of each packet to userspace."""
        copy_range = max(0, min(MAX_COPY_RANGE, int(copy_range)))
        self._config(_nla(NFQA_CFG_PARAMS, struct.pack(">IB", copy_range, NFQNL_COPY_PACKET)))
        self.copy_range = copy_range

    def set_max_len(self, max_len: int) -> None:
        """Kernel queue length in packets (queued for us + awaiting our verdict)."""
        self._config(_nla(NFQA_CFG_QUEUE_MAXLEN, _BE32.pack(max(1, int(max_len)))))
        self.max_len = max_len

    def set_gso(self, gso: bool) -> None:
        """Turn NFQA_CFG_F_GSO on or off: with it, GSO super-packets (up to 64 KiB) and packets
        with partial checksums are queued as they are, one message per unit.

        Call only from the thread that receives (the ACK is read from the same socket);
        packets read meanwhile go to ``pending``, queued with the previous setting."""
        self._config(
            _nla(NFQA_CFG_FLAGS, _BE32.pack(NFQA_CFG_F_GSO if gso else 0))
            + _nla(NFQA_CFG_MASK, _BE32.pack(NFQA_CFG_F_GSO))
        )
        self.gso = gso

    def _verdict_prefix_for(self, msg_type: int, extra: int) -> bytes:
        """Header bytes of a verdict message up to the verdict value (12 + extra trailing)."""
        length = 16 + 4 + 12 + extra
        return (
            _NLMSGHDR.pack(length, msg_type, NLM_F_REQUEST, 0, 0)
            + _nfgen(self.queue_num)
            + _NLATTR.pack(12, NFQA_VERDICT_HDR)
        )

    # -- data path -------------------------------------------------------------------------
    def fileno(self) -> int:
        return self.sock.fileno()

    def verdict_msg(self, packet_id: int, verdict: int, payload: bytes | bytearray | None = None) -> bytes:
        """Build (don't send) one NFQNL_MSG_VERDICT; ``payload`` replaces the packet."""
        hdr = _BE32.pack(verdict) + _BE32.pack(packet_id)
        if payload is None:
            return self._verdict_prefix + hdr
        pattr = _nla(NFQA_PAYLOAD, bytes(payload))
        length = 16 + 4 + 12 + len(pattr)
        return (
            _NLMSGHDR.pack(length, NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, 0)
            + _nfgen(self.queue_num)
            + _NLATTR.pack(12, NFQA_VERDICT_HDR)
            + hdr
            + pattr
        )

    def batch_msg(self, last_id: int, verdict: int = NF_ACCEPT) -> bytes:
        """NFQNL_MSG_VERDICT_BATCH: ``verdict`` for every queued packet with id <= last_id.

        Only safe when no packet with a smaller id is being held back for later.
        """
        return self._batch_prefix + _BE32.pack(verdict) + _BE32.pack(last_id)

    def send(self, data: bytes) -> None:
        """Send one or more concatenated netlink messages in one datagram."""
        self.sock.sendto(data, (0, 0))

    def verdict(self, packet_id: int, verdict: int, payload: bytes | bytearray | None = None) -> None:
        """Issue one verdict right away."""
        self.send(self.verdict_msg(packet_id, verdict, payload))

    def close(self) -> None:
        """Unbind (best effort) and close; the kernel drops packets still awaiting a verdict."""
        if self._bound:
            self._bound = False
            try:
                self._seq += 1
                body = _nfgen(self.queue_num) + _nla(
                    NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_UNBIND, 0, 0)
                )
                self.sock.sendto(
                    _NLMSGHDR.pack(16 + len(body), NFQNL_MSG_CONFIG, NLM_F_REQUEST, self._seq, 0) + body,
                    (0, 0),
                )
            except OSError:
                pass
        self.sock.close()


def _iter_msgs(buf: bytearray | memoryview, n: int) -> Iterator[tuple[int, int, int, int]]:
    """(type, seq, offset, length) of each netlink message in buf[:n]."""
    off = 0
    while off + 16 <= n:
        mlen, mtype, _flags, seq, _pid = _NLMSGHDR.unpack_from(buf, off)
        if mlen < 16 or off + mlen > n:
            break
        yield mtype, seq, off, mlen
        off += (mlen + 3) & ~3


def parse_packet(buf: bytearray | memoryview, off: int, mlen: int) -> tuple[int, int, int, int, int]:
    """Parse one NFQNL_MSG_PACKET at ``buf[off:off+mlen]``.

    Returns (packet_id, payload_offset, payload_length, cap_len, skb_info): the payload is
    ``buf[payload_offset:payload_offset+payload_length]`` (a possibly truncated copy of the
    IP packet); cap_len is the original packet length in bytes when the copy was truncated,
    else 0; skb_info the NFQA_SKB_INFO flags (0 when absent); packet_id is -1 when the
    message has no packet header.
    """
    pid = -1
    poff = plen = cap = info = 0
    a = off + 20
    end = off + mlen
    unpack_attr = _NLATTR.unpack_from
    while a + 4 <= end:
        alen, atype = unpack_attr(buf, a)
        if alen < 4:
            break
        atype &= NLA_TYPE_MASK
        if atype == NFQA_PACKET_HDR:
            pid = _BE32.unpack_from(buf, a + 4)[0]
        elif atype == NFQA_PAYLOAD:
            poff = a + 4
            plen = alen - 4
        elif atype == NFQA_CAP_LEN:
            cap = _BE32.unpack_from(buf, a + 4)[0]
        elif atype == NFQA_SKB_INFO:
            info = _BE32.unpack_from(buf, a + 4)[0]
        a += (alen + 3) & ~3
    return pid, poff, plen, cap, info


def read_kernel_stats() -> dict[int, dict[str, int]]:
    """Per-queue kernel counters from /proc/net/netfilter/nfnetlink_queue (this netns).

    Keys: queue_total (packets waiting now), queue_dropped (kernel queue full),
    user_dropped (netlink socket buffer full), id_sequence (last packet id).
    """
    out: dict[int, dict[str, int]] = {}
    try:
        with open("/proc/net/netfilter/nfnetlink_queue", encoding="ascii") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 8:
                    continue
                out[int(fields[0])] = {
                    "portid": int(fields[1]),
                    "queue_total": int(fields[2]),
                    "copy_mode": int(fields[3]),
                    "copy_range": int(fields[4]),
                    "queue_dropped": int(fields[5]),
                    "user_dropped": int(fields[6]),
                    "id_sequence": int(fields[7]),
                }
    except OSError:
        pass
    return out
