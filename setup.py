"""Packaging step pyproject.toml cannot express: the testbed's build files in the wheel.

The images are built from the installed package, so the wheel carries the build context
as package data under `netbed/_testbed/`, laid out exactly as in the checkout
(compose.yaml, .dockerignore, services/*/Dockerfile, services/agent/netbed_agent,
services/router/netbed_router, harness/netbed_core): the same Dockerfiles, the same
sources digest (netbed.images.sources_digest).  An editable install (`make venv`) skips
this: there netbed.package_data finds the checkout itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: What the build context holds, relative to the checkout (files, or folders copied whole).
CONTEXT = (
    "compose.yaml", ".dockerignore",
    "services/client/Dockerfile", "services/router/Dockerfile", "services/server/Dockerfile",
    "services/agent/netbed_agent", "services/router/netbed_router", "harness/netbed_core",
)


class BuildWithTestbed(build_py):  # type: ignore[misc]
    """build_py, then the build context copied into build_lib/netbed/_testbed."""

    def run(self) -> None:
        editable = getattr(self, "editable_mode", False)
        if not editable:
            # build/lib outlives a build: without this a module deleted from the checkout
            # would still ship in the next wheel.
            shutil.rmtree(self.build_lib, ignore_errors=True)
        super().run()
        if editable:
            return  # editable: the checkout is the context (netbed.package_data.checkout_root)
        target = Path(self.build_lib) / "netbed" / "_testbed"
        shutil.rmtree(target, ignore_errors=True)
        for item in CONTEXT:
            source, dest = ROOT / item, target / item
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithTestbed})
