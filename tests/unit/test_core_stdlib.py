"""The code that runs in the router container and the VM loads nothing outside the standard library.

The router image and the VM get no pip install: they copy `netbed_core`, `netbed_agent`,
`netbed_router` (and the VM `netbed_testkit`) as they are. Each is imported here alone, in a
fresh interpreter that cannot see site-packages, and every module it loaded must be in
`sys.stdlib_module_names` or be one of those packages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "harness", ROOT / "services" / "agent", ROOT / "services" / "router"]
OURS = {"netbed_core", "netbed_agent", "netbed_router", "netbed_testkit"}

PROBE = """
import importlib, json, pkgutil, sys
pkg = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize("package", sorted(OURS))
def test_package_imports_only_the_standard_library(package: str) -> None:
    env = {"PYTHONPATH": ":".join(str(p) for p in SOURCES), "PATH": "/usr/bin:/bin"}
    # -S: no site-packages, so a third-party import fails instead of being found by luck.
    proc = subprocess.run([sys.executable, "-S", "-c", PROBE, package], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout))
    foreign = sorted(loaded - set(sys.stdlib_module_names) - OURS - {"__main__"})
    assert not foreign, f"{package} loads modules outside the standard library: {foreign}"
    if package == "netbed_core":
        assert loaded & OURS == {"netbed_core"}, "the core must not import the agent or the router"


def test_router_does_not_import_the_harness() -> None:
    offenders = [str(p.relative_to(ROOT)) for base in SOURCES[1:] for p in base.rglob("*.py")
                 if any(line.startswith(("from netbed ", "from netbed.", "import netbed"))
                        and not line.startswith(("from netbed_", "import netbed_"))
                        for line in p.read_text().splitlines())]
    assert not offenders, f"imports the harness package (use netbed_core): {offenders}"
