"""A machine-wide lock around choosing a testbed's subnets and creating its networks.

Two testbeds started at the same moment would otherwise both see the same
free subnet pair and one would fail with "Pool overlaps".  The lock is an
`fcntl.flock` on a file in the user's runtime directory (or the temporary
directory), held from choosing the subnet index until the networks exist.
The kernel drops it when the holder exits, however it exits.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_path() -> Path:
    """In $NETBED_LOCK_DIR, else $XDG_RUNTIME_DIR, else the temporary directory (the first that
    exists); one file per user (other users' testbeds are met by the "Pool overlaps" retry)."""
    candidates = (os.environ.get("NETBED_LOCK_DIR"), os.environ.get("XDG_RUNTIME_DIR"))
    base = next((Path(c) for c in candidates if c and Path(c).is_dir()), Path(tempfile.gettempdir()))
    return base / f"netbed-subnets-{os.getuid()}.lock"


@contextmanager
def subnet_lock(path: Path | None = None) -> Iterator[None]:
    """Hold the subnet lock (blocking) for the body of the `with`."""
    target = path or lock_path()
    with open(target, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
