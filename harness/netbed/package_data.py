"""Where the testbed's build files are: the checkout, or the installed package.

Images are built from a directory laid out as the checkout is (compose.yaml,
.dockerignore, services/*/Dockerfile, the agent and router packages,
harness/netbed_core). Two places hold one:

- a checkout with an editable install (`make venv`): the checkout itself, so
  `make up` builds exactly what is in the work tree;
- an installed wheel: `netbed/_testbed/` inside the installed package, which
  setup.py's build step fills with the same files.

The checkout wins when both exist: an editable install has no `_testbed`, and a
wheel installed beside a checkout is still told apart by `checkout_root()`.
"""

from __future__ import annotations

from pathlib import Path

from .errors import NetbedError

#: The files a build context must hold to be one (the rest is checked by `docker build`).
_MARKERS = ("compose.yaml", "services/agent/netbed_agent/__init__.py", "harness/netbed_core/__init__.py")
_PACKAGE_DIR = Path(__file__).resolve().parent
#: In a checkout, harness/netbed/ is two levels below the root.
_CHECKOUT_CANDIDATE = _PACKAGE_DIR.parents[1]
#: In an installed wheel, the build context is package data.
_INSTALLED_CANDIDATE = _PACKAGE_DIR / "_testbed"


class PackageDataMissing(NetbedError):
    """Neither a checkout nor the installed package holds the testbed's build files."""


def _is_context(root: Path) -> bool:
    return all((root / marker).is_file() for marker in _MARKERS)


def checkout_root() -> Path | None:
    """The checkout this package runs from (an editable install), or None."""
    return _CHECKOUT_CANDIDATE if _is_context(_CHECKOUT_CANDIDATE) else None


def testbed_root() -> Path:
    """The directory the images are built from and compose.yaml lives in (the installed
    package's, even when it lacks the files: `check()` says so, `Compose.run` names the file)."""
    for root in (_CHECKOUT_CANDIDATE, _INSTALLED_CANDIDATE):
        if _is_context(root):
            return root
    return _INSTALLED_CANDIDATE


def missing_hint() -> str:
    """What to do when the build files are missing, for an error message."""
    return (
        f"the testbed's build files (compose.yaml, Dockerfiles, agents) are neither in a checkout "
        f"({_CHECKOUT_CANDIDATE}) nor in the installed package ({_INSTALLED_CANDIDATE}): reinstall netbed "
        "from its wheel or source directory (`pip install PATH`), not from a copy of the Python files alone")


def check() -> Path:
    """`testbed_root()`, or PackageDataMissing saying what to do."""
    root = testbed_root()
    if not _is_context(root):
        raise PackageDataMissing(missing_hint())
    return root


def compose_file() -> Path:
    """The testbed's compose file (in `testbed_root()`)."""
    return testbed_root() / "compose.yaml"
