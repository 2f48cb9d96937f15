"""Every bound the agent enforces, in one place (docs/agent-protocol.md states them).

Each limit keeps one client, buggy or hostile, from stalling the agent or
growing it without bound; the numbers leave room for the heaviest test in the
suite (a 512 KiB sendall, 50 concurrent echo connections).
"""

from __future__ import annotations

#: Longest request line, bytes.  A longer line gets a bad_request reply and is
#: skipped up to its newline without being buffered; bulk data belongs in a
#: workload operation (stream_send), not in one JSON line.
MAX_LINE_BYTES = 2 * 1024 * 1024
#: Deepest JSON nesting accepted in a request (a request needs 5).
MAX_DEPTH = 32
#: Longest JSON number literal, characters (int64 needs 20).  Checked before
#: conversion, so a 5,000-digit integer costs nothing.
MAX_NUMBER_CHARS = 40
#: Control connections served at once; one more gets a `busy` reply and is closed.
MAX_CONNECTIONS = 64
#: Listen backlog of the control socket (a burst of connections waits here
#: only until the accept loop reaches it).
LISTEN_BACKLOG = 256
#: Requests read ahead of the one running, per connection (pipelining).
PIPELINE_DEPTH = 16
#: Unfinished or unwaited jobs one connection may hold.
MAX_JOBS_PER_CONNECTION = 256
#: Job threads running at once in the whole agent.
MAX_RUNNING_JOBS = 256
#: Connections one echo service serves at once (one thread each).
MAX_ECHO_CONNECTIONS = 128
#: Upper bound for any blocking operation's timeout, seconds.
MAX_TIMEOUT_S = 600.0
#: Longest wait for a connection's background work to stop after it closes, seconds.
CLEANUP_WAIT_S = 2.0
#: Items in a process's argv (the request line, 2 MiB, bounds their total size).
MAX_ARGV_ITEMS = 4096
#: Bytes of each output stream (stdout, stderr) kept per process by default: the
#: last ones; the reply says how many were dropped before them.
DEFAULT_OUTPUT_BYTES = 1024 * 1024
#: Largest `max_output` a request may ask for, bytes per stream.
MAX_OUTPUT_BYTES = 8 * 1024 * 1024
#: Spawned processes one connection may hold (running, or ended and not closed).
MAX_PROCESSES_PER_CONNECTION = 64
#: Spawned processes held in the whole agent (all connections).
MAX_RUNNING_PROCESSES = 256
#: Output capture the whole agent may reserve, bytes (each process reserves twice
#: its max_output, stdout and stderr): bounds the agent's memory whatever is asked.
MAX_OUTPUT_BUFFERED_BYTES = 256 * 1024 * 1024
