"""The README's "Use netbed in your project" test, as written there, runs and passes.

Its image, myorg/myservice:dev, is the user's; a stand-in (python3's http.server on 8080,
FROM the testbed's base image) is built under that name for the run and removed after. The
test runs in an inner pytest session on this testbed (reused, so left running), from a
directory outside the checkout.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import docker.errors
import pytest

from netbed import images
from netbed.testbed import Testbed

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "myorg/myservice:dev"


def readme_test() -> str:
    section = (ROOT / "README.md").read_text().split("## Use netbed in your project", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_test_of_your_own_service_passes(testbed: Testbed, tmp_path: Path) -> None:
    source = readme_test()
    assert f'server.attach("{IMAGE}")' in source
    try:
        testbed.docker.images.get(IMAGE)
        pytest.skip(f"an image {IMAGE} already exists on this machine: not overwriting it with a stand-in")
    except docker.errors.ImageNotFound:
        pass
    base, _why = images.choose_base_image(testbed.docker)
    dockerfile = f'FROM {base}\nCMD ["python3", "-m", "http.server", "8080"]\n'.encode()
    testbed.docker.images.build(fileobj=io.BytesIO(dockerfile), tag=IMAGE, rm=True, pull=False)
    try:
        (tmp_path / "test_my_service.py").write_text(source)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--netbed-instance",
                               testbed.instance, "test_my_service.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    finally:
        testbed.docker.images.remove(IMAGE, force=True)
