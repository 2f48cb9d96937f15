"""Wall-clock times of the testbed's lifecycle: cold up, warm up, down, make test.

    .venv/bin/python bench/lifecycle.py [--skip-cold] [--skip-test]

Cold `make up` starts with no netbed image at all: it removes every image
labelled io.netbed.testbed (the bootstrapped base included) and the engine's
build cache, so it measures bootstrap + build + start as a new machine sees
it.  Run it on an otherwise idle machine: it wipes that cache.  Prints a
Markdown table (the README quotes it) with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"cold make up": 90.0, "warm make up": 5.0, "make down": 5.0, "make test": 300.0}


def timed(label: str, argv: list[str], env: dict[str, str]) -> float:
    print(f"bench: {label}: {' '.join(argv)}", file=sys.stderr, flush=True)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {label} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    docker = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True, text=True)
    return (f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}, "
            f"Docker engine {docker.stdout.strip() or '?'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cold", action="store_true", help="keep images; measure warm steps only")
    parser.add_argument("--skip-test", action="store_true", help="do not time `make test`")
    opts = parser.parse_args()
    env = {**os.environ, "NETBED_INSTANCE": "bench"}
    results: dict[str, float] = {}
    make = ["make", "--no-print-directory"]
    timed("down (start clean)", [*make, "down"], env)
    if not opts.skip_cold:
        timed("remove images", [*make, "clean"], env)
        subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)
        results["cold make up"] = timed("cold up", [*make, "up"], env)
        timed("down", [*make, "down"], env)
    timed("warm-up run (fills caches)", [*make, "up"], env)
    timed("down", [*make, "down"], env)
    results["warm make up"] = timed("warm up", [*make, "up"], env)
    results["make down"] = timed("down", [*make, "down"], env)
    if not opts.skip_test:
        results["make test"] = timed("make test (starts and removes its own testbed)", [*make, "test"], env)
    print(f"\nMeasured {time.strftime('%Y-%m-%d')} on {machine()}.\n")
    print("| step | wall time | target |")
    print("|---|---|---|")
    for step, seconds in results.items():
        print(f"| {step} | {seconds:.1f} s | ≤ {TARGETS_S[step]:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
