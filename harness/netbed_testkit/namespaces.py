"""Running commands and opening sockets inside network namespaces.

``inside(name)`` moves the *calling thread* into the named namespace (``setns``) for a block
and back afterwards.  Sockets opened in the block stay in that namespace for good and can
then be used from any thread; subprocesses started in the block inherit it.  Commands that
only need a namespace's network take ``ip -n NAME`` and ``run``.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class CommandError(RuntimeError):
    """A command exited non-zero: the argument list, its exit status and its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)}: exit {returncode}: {stderr.strip()}")
        self.argv, self.returncode, self.stderr = argv, returncode, stderr


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell), capturing text output; raise CommandError on a
    non-zero exit when ``check``."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise CommandError(list(argv), proc.returncode, proc.stderr)
    return proc


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({what}): {os.strerror(err)}")


@contextmanager
def inside(name: str) -> Iterator[None]:
    """Run the block in network namespace ``name`` (one made by ``ip netns add``)."""
    # thread-self, not self: another thread of this process may be elsewhere.
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target, name)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home, f"back from {name}")
    finally:
        os.close(home)


def write_sysctl(namespace: str, key: str, value: str) -> None:
    """Set sysctl ``key`` ("net/ipv4/ip_forward") in ``namespace``.  Through /proc/sys
    rather than the sysctl tool, which the VM's minimal root filesystem lacks."""
    with inside(namespace), open(f"/proc/sys/{key}", "w") as f:
        f.write(value)
