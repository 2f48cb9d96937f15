"""The `netbed` command: up, down, status, impair, clear, scenario, events, run, shell, capture, clean.

Errors print one line saying what to do, never a traceback; the exit code
is 1 for a netbed error, 2 for a usage error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

import docker.errors

from netbed_core.directions import BOTH, DIRECTIONS
from netbed_core.netem import NetemError
from netbed_core.netem.render import describe

from . import attach_spec, cli_capture, cli_scenario, compose, docker_api, images, reaper, timeline
from .errors import NetbedError, ProcessTimeout
from .profiles import load_profiles, resolve
from .testbed import Testbed

#: The router counters `netbed status` prints per direction (when the backend measures them).
STATUS_COUNTERS = ("seen", "passed", "dropped", "duplicated", "corrupted", "reordered", "delayed", "queue_depth")


def _print_status(report: dict[str, Any]) -> None:
    print(f"testbed {report['instance']}: {'up' if report['running'] else 'not running'}")
    for side, nets in (report.get("subnets") or {}).items():
        print(f"  {side:12} {nets}")
    stale = (report.get("images") or {}).get("stale")
    if stale:
        hosts = ", ".join(sorted(stale))
        print(f"  images     STALE: {hosts} built from other sources than this checkout; `make up` rebuilds them")
    for name, entry in report["hosts"].items():
        agent = entry.get("agent", "-")
        print(f"  {name:7} {entry['state']:8} ipv4 {entry.get('ipv4', '-'):12} ipv6 {entry.get('ipv6', '-'):20} "
              f"agent {agent}")
    for entry in report.get("attachments") or []:
        print(f"  attached {entry['name']} ({entry['image']}) on {entry['host']}: {entry['state']}")
    if "router" in report:
        r = report["router"]
        if "error" in r:
            print(f"  router counters: {r['error']}")
        else:
            print(f"  router forwarded: ipv4 {r['ipv4_forwarded']} ipv6 {r['ipv6_forwarded']} packets")
    imp = report.get("impairment")
    if imp:
        print(f"  impairment backend: {imp['backend']} ({imp['reason']})")
        _print_scenario(imp)
        availability = imp.get("counters") or {}
        if availability:
            print(f"  counters measured: {' '.join(availability['measured']) or 'none'}")
            if availability["not_available"]:
                print(f"  not available on this backend: {' '.join(availability['not_available'])}")
        values = availability.get("values", {})
        for direction, entry in imp["directions"].items():
            setting = entry["impairment"]
            text = "none (pristine forwarding)" if setting is None else setting["description"]
            if setting and setting.get("match"):
                text += f" [only {setting['match']}]"
            # Only what the backend measures: a counter it cannot measure is not a 0.
            shown = {k: v for k, v in values.get(direction, {}).items() if k in STATUS_COUNTERS}
            counts = " ".join(f"{k}={v}" for k, v in shown.items()) if setting else ""
            print(f"  {direction:9} {text}" + (f"\n            {counts}" if counts else ""))
            engine = (entry.get("stats") or {}).get("engine_process")
            if engine and setting and engine.get("scheduling"):
                print(f"            {engine['scheduling']['description']}")
            if engine and engine.get("restarts"):
                print(f"            engine process restarted {engine['restarts']}x (last: {engine.get('last_exit')}); "
                      f"impairment re-applied: {'yes' if engine.get('reapplied') else 'no'}")


def _print_scenario(imp: dict[str, Any]) -> None:
    sc = imp.get("scenario")
    if not sc:
        return
    step = f"step {sc['step']} (cycle {sc['cycle']}): {sc['action']}" if sc.get("step") else ""
    if sc["state"] != "running":
        step = ""
    error = f": {sc['error']}" if sc.get("error") else ""
    print(f"  scenario  {sc['name'] or '(unnamed)'} {sc['state']}" + (f", {step}" if step else "") + error)


def cmd_up(opts: argparse.Namespace) -> int:
    # Override files are merged onto netbed's compose file, in the order given (`-f`).
    tb = Testbed(opts.instance, compose_files=[compose.COMPOSE_FILE, *(Path(f).resolve() for f in opts.file)])
    specs = [attach_spec.parse(text, lambda ref: images.have_image(tb.docker, ref)) for text in opts.attach]
    tb.up(build=not opts.no_build)
    for spec in specs:
        started = attach_spec.start(tb, spec)
        print(f"attached {spec.image} to {spec.host}: container {started}", file=sys.stderr)
    _print_status(tb.status())
    tb.close_connections()
    return 0


def cmd_down(opts: argparse.Namespace) -> int:
    tb = Testbed(opts.instance)
    tb.down()
    left = docker_api.leftovers(tb.docker, tb.instance)
    if any(left.values()):
        print(f"netbed: still present after down: {left}; try `make clean`", file=sys.stderr)
        return 1
    print(f"testbed {tb.instance}: down, nothing left")
    return 0


def cmd_status(opts: argparse.Namespace) -> int:
    tb = Testbed(opts.instance)
    report = tb.status()
    if opts.json:
        print(json.dumps(report, indent=2))
    else:
        _print_status(report)
    tb.close_connections()
    return 0 if report["running"] else 3


def cmd_impair(opts: argparse.Namespace) -> int:
    # The Makefile passes ARGS as one quoted word after "--"; split it here, never in a shell.
    words = " ".join(w for w in opts.netem if w != "--").split()
    if not opts.profile and not words:
        # An empty impairment would silently mean "pristine": say what to use instead.
        print("netbed: impair needs netem arguments (e.g. `netbed impair delay 100ms loss 1%`) or --profile NAME; "
              "to remove every impairment use `netbed clear`", file=sys.stderr)
        return 2
    try:
        # With --profile, the arguments override the profile's settings (`--profile wan seed 7`).
        netem = resolve(" ".join(words), opts.profile)
    except NetemError as exc:
        print(f"netbed: {exc}", file=sys.stderr)
        return 2
    tb = Testbed(opts.instance)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tb.router.impair(netem, direction=opts.direction, match=opts.match)
    for warning in caught:
        print(f"netbed: warning: {warning.message}", file=sys.stderr)
    where = f" (only {opts.match})" if opts.match else ""
    print(f"{opts.direction}: {describe(netem)}{where}")
    tb.close_connections()
    return 0


def cmd_clear(opts: argparse.Namespace) -> int:
    tb = Testbed(opts.instance)
    tb.router.clear(opts.direction)
    print(f"{opts.direction}: pristine forwarding")
    tb.close_connections()
    return 0


def cmd_events(opts: argparse.Namespace) -> int:
    tb = Testbed(opts.instance)
    try:
        reply = tb.router.events(since=opts.since)
    finally:
        tb.close_connections()
    print(json.dumps(reply, indent=2) if opts.json else timeline.format_events(reply))
    return 0


def cmd_profiles(opts: argparse.Namespace) -> int:
    for item in load_profiles().values():
        print(f"{item.name:12} {item.netem:55} {item.about}")
    return 0


def cmd_clean(opts: argparse.Namespace) -> int:
    client = docker_api.connect()
    removed = docker_api.remove_by_label(client, None)
    if opts.images:
        removed["images"] = docker_api.remove_images(client)
    for kind, names in removed.items():
        if names:
            print(f"removed {len(names)} {kind}: {', '.join(names)}")
    left = docker_api.leftovers(client)
    if any(left.values()):
        print(f"netbed: could not remove {left}", file=sys.stderr)
        return 1
    print("nothing labelled io.netbed.testbed is left")
    return 0


#: Hosts `run` and `shell` reach.
HOSTS = ("client", "router", "server")
#: `netbed run`'s default timeout, seconds: the agent's upper bound.
RUN_TIMEOUT_S = 600.0
#: Exit code when `netbed run` hits its timeout (as timeout(1) does).
EXIT_TIMEOUT = 124


def run_argv(words: list[str]) -> list[str]:
    """The command after `--` (argparse.REMAINDER keeps a leading "--")."""
    return words[1:] if words[:1] == ["--"] else list(words)


def cmd_run(opts: argparse.Namespace) -> int:
    argv = run_argv(opts.cmd)
    if not argv:
        print(f"netbed: run needs a command: `netbed run {opts.host} -- CMD [ARG...]`", file=sys.stderr)
        return 2
    tb = Testbed(opts.instance)
    try:
        result = tb.host(opts.host).run(argv, timeout=opts.timeout)
    except ProcessTimeout as exc:
        sys.stdout.buffer.write(exc.stdout)
        sys.stdout.buffer.flush()
        sys.stderr.buffer.write(exc.stderr)
        print(f"netbed: {exc.host}: {argv!r} still running after {exc.timeout_s:g} s; killed", file=sys.stderr)
        return EXIT_TIMEOUT
    finally:
        tb.close_connections()
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.stderr.buffer.flush()
    if result.truncated:
        print(f"netbed: output truncated: the first {result.stdout_dropped_bytes} bytes of stdout and "
              f"{result.stderr_dropped_bytes} of stderr were dropped", file=sys.stderr)
    # As a shell reports it: 128 + N for a process killed by signal N.
    return result.returncode if result.returncode >= 0 else 128 - result.returncode


def cmd_shell(opts: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        instance = opts.instance or "$NETBED_INSTANCE"
        print(f"netbed: `netbed shell {opts.host}` needs a terminal (stdin and stdout are not one here); "
              f"to run a command use `netbed --instance {instance} run {opts.host} -- CMD [ARG...]` "
              "(`.venv/bin/netbed` in a checkout)", file=sys.stderr)
        return 2
    tb = Testbed(opts.instance)
    container = tb.containers().get(opts.host)
    if container is None or container.status != "running":
        print(f"netbed: no running {opts.host} in testbed '{tb.instance}'; run `make up` first", file=sys.stderr)
        return 1
    docker = shutil.which("docker")
    if docker is None:
        print("netbed: the docker command is not on PATH; `netbed shell` runs `docker exec -it`", file=sys.stderr)
        return 1
    os.execv(docker, [docker, "exec", "-it", container.id, "bash"])
    return 0  # not reached: exec replaces this process


#: Commands that talk to the engine: each first removes what ended sessions left (reaper.py).
_REAPING_COMMANDS = {"up", "down", "status", "impair", "clear", "scenario", "events", "run", "capture", "clean"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netbed", description="A containerized client-router-server testbed.")
    parser.add_argument("--instance", help="testbed instance name (default: $NETBED_INSTANCE or 'netbed')")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build and start the testbed; wait until every host answers")
    up.add_argument("--no-build", action="store_true", help="do not rebuild images")
    up.add_argument("--attach", action="append", default=[], metavar="HOST=IMAGE[:CMD]",
                    help="start a local IMAGE (never pulled) in HOST's network namespace, with CMD instead of its "
                         "own; repeatable; removed by `netbed down`")
    up.add_argument("-f", "--file", action="append", default=[], metavar="OVERRIDE.yaml",
                    help="a compose file merged onto netbed's (e.g. a service with `network_mode: service:server`); "
                         "repeatable")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the testbed and remove its containers, networks, volumes")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="hosts, addresses, agents and router counters")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
    impair = sub.add_parser("impair", help="impair forwarded traffic, in tc netem's syntax",
                            description="NETEM is tc-netem's own syntax, e.g. `delay 100ms 10ms loss 1%%`.")
    impair.add_argument("--direction", choices=[BOTH, *DIRECTIONS], default="both")
    impair.add_argument("--match", metavar="PROTO[:PORT]", help="only these packets, e.g. udp:5000 or icmp")
    impair.add_argument("--profile", help="a named profile (see `netbed profiles`); netem arguments given too "
                        "override its settings, e.g. `--profile wan seed 7`")
    impair.add_argument("netem", nargs=argparse.REMAINDER, help="netem arguments")
    impair.set_defaults(func=cmd_impair)
    clear = sub.add_parser("clear", help="back to pristine forwarding")
    clear.add_argument("--direction", choices=[BOTH, *DIRECTIONS], default="both")
    clear.set_defaults(func=cmd_clear)
    events = sub.add_parser("events", help="the router's impairment timeline: every impair, clear and reset")
    events.add_argument("--since", type=int, metavar="SEQ", help="only events after this sequence number")
    events.add_argument("--json", action="store_true", help="machine-readable output")
    events.set_defaults(func=cmd_events)
    cli_scenario.add_parser(sub)
    profiles = sub.add_parser("profiles", help="list the named impairment profiles")
    profiles.set_defaults(func=cmd_profiles)
    run = sub.add_parser("run", help="run a command on a host; its exit code is ours",
                         description="Runs CMD on HOST through its agent (no shell: use `sh -c '...'` for one); "
                                     "its stdout and stderr go to ours once it ends; exit code passed through "
                                     f"(128+N if killed by signal N, {EXIT_TIMEOUT} on timeout).")
    run.add_argument("host", choices=HOSTS)
    run.add_argument("--timeout", type=float, default=RUN_TIMEOUT_S, metavar="SECONDS",
                     help=f"kill its process group after this long (default and at most {RUN_TIMEOUT_S:g})")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    run.set_defaults(func=cmd_run)
    shell = sub.add_parser("shell", help="an interactive shell on a host (needs a terminal)")
    shell.add_argument("host", choices=HOSTS)
    shell.set_defaults(func=cmd_shell)
    cli_capture.add_parser(sub)
    clean = sub.add_parser("clean", help="remove everything labelled as any netbed testbed")
    clean.add_argument("--images", action="store_true", help="also remove the images netbed built")
    clean.set_defaults(func=cmd_clean)
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (how CI cancels a job) is handled as Ctrl-C, so a half-started testbed is removed."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not interrupt the cleanup
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        if opts.command in _REAPING_COMMANDS:
            reaper.reap_orphans(docker_api.connect())
        return int(opts.func(opts))
    except NetbedError as exc:
        print(f"netbed: {exc}", file=sys.stderr)
        return 1
    except docker.errors.DockerException as exc:
        # The engine answered with an error netbed did not expect: say so in one line.
        print(f"netbed: Docker engine error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("netbed: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
