"""`server.attach(image)` until `wait_for_port` returns: p50 and max over N runs.

    .venv/bin/python bench/attach.py [--runs 10] [--instance NAME]

Measures what a test pays to put its own service beside a host: checking the image is
local, creating and starting a container in the server's network namespace, and polling
`ss` through the server's agent until the service listens; then the removal, timed apart.
The image is built here FROM the testbed's base image (python3's http.server, no RUN).
Needs `make up`. Issue #7's target: attach until listening <= 2 s. Prints one Markdown
table row with the machine's load average, since several sessions may share the cores.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import uuid

from netbed import images
from netbed.testbed import Testbed

TARGET_S = 2.0
PORT = 8080


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--instance", default=None)
    opts = parser.parse_args()
    tb = Testbed(opts.instance)
    base, _why = images.choose_base_image(tb.docker)
    tag = f"netbed-bench-httpd:{uuid.uuid4().hex[:8]}"
    dockerfile = f'FROM {base}\nCMD ["python3", "-m", "http.server", "{PORT}"]\n'.encode()
    tb.docker.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False)
    ready_s: list[float] = []
    stop_s: list[float] = []
    try:
        server = tb.server
        for _ in range(opts.runs + 1):  # the first run warms the engine's caches: not counted
            start = time.perf_counter()
            attachment = server.attach(tag)
            try:
                attachment.wait_for_port(PORT, timeout=30)
                ready_s.append(time.perf_counter() - start)
            finally:
                start = time.perf_counter()
                attachment.stop()
                stop_s.append(time.perf_counter() - start)
    finally:
        tb.close_connections()
        tb.docker.images.remove(tag, force=True)
    ready_s, stop_s = sorted(ready_s[1:]), sorted(stop_s[1:])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"| attach until wait_for_port, {opts.runs} runs | p50 {statistics.median(ready_s):.2f} s | "
          f"max {ready_s[-1]:.2f} s | stop p50 {statistics.median(stop_s):.2f} s | load {load} |")
    if statistics.median(ready_s) > TARGET_S:
        print(f"bench: p50 {statistics.median(ready_s):.2f} s is above the target {TARGET_S:g} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
