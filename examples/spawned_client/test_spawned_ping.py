"""A long-running client program, read while the router changes conditions under it.

The program is `ping -O` (it says "no answer yet" for each request left unanswered); yours
would be your own client. Each step changes the router, then waits (with a deadline) until
the program's own output shows the change.
"""

import re
import time

REPLY = re.compile(r"icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms")


def wait_for(proc, seen, what, timeout=30.0):
    """Poll the process's output until `seen(text)` is true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not seen(proc.output().stdout_text):
        assert proc.returncode is None, f"the program ended: {proc.output().tail()}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s:\n{proc.output().tail()}"
        time.sleep(0.1)  # polling its output, with the deadline above


def replies_after(text, seq):
    """(icmp_seq, RTT ms) of every reply to a request sent after `seq`."""
    return [(int(s), float(ms)) for s, ms in REPLY.findall(text) if int(s) > seq]


def last_seq(text):
    numbers = [int(n) for n in re.findall(r"icmp_seq=(\d+)", text)]
    return max(numbers, default=0)


def test_a_running_client_sees_each_change_of_the_network(client, server, router):
    with client.spawn(["ping", "-O", "-i", "0.2", server.ipv4]) as ping:
        wait_for(ping, lambda text: len(replies_after(text, 0)) >= 3, "replies on a clean network")

        with router.impair("delay 100ms"):  # each way: every RTT is at least 200 ms
            mark = last_seq(ping.output().stdout_text)
            wait_for(ping, lambda text: len(replies_after(text, mark + 1)) >= 3, "replies under delay")
            assert all(rtt >= 200 for _, rtt in replies_after(ping.output().stdout_text, mark + 1))

        with router.impair("partition"):
            mark = last_seq(ping.output().stdout_text)
            wait_for(ping, lambda text: f"no answer yet for icmp_seq={mark + 3}" in text, "unanswered requests")

        # Pristine again: answers resume.
        mark = last_seq(ping.output().stdout_text)
        wait_for(ping, lambda text: len(replies_after(text, mark)) >= 3, "replies after the partition")
