"""netbed host agent: drives real sockets on a testbed host for the harness.

Standard library only.  The control protocol is line-delimited JSON over TCP,
documented in docs/agent-protocol.md.
"""

PROTOCOL_VERSION = 1
