"""`netbed scenario NAME|FILE.yaml`: start a scenario on the router (it runs there until it ends,
`--stop`, or the next reset); `--follow` prints each step as it takes effect and stops the
scenario on Ctrl-C; `--list` shows the named scenarios; `--stop` stops the running one."""

from __future__ import annotations

import argparse
import sys
import time

from netbed_core.scenario import ScenarioError, parse_scenario

from .scenario_files import ScenarioFileError, load_named, resolve
from .testbed import Testbed

#: How often `--follow` asks the router for new timeline entries, seconds.
FOLLOW_POLL_S = 0.2


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("scenario", help="run network conditions over time on the router (NAME or FILE.yaml)",
                       description="Starts the scenario on the router, which runs it on its own clock until it "
                                   "ends, `netbed scenario --stop`, or the next test's reset. `netbed status` "
                                   "shows the current step.")
    p.add_argument("what", nargs="?", metavar="NAME|FILE.yaml", help="a named scenario (--list) or a file")
    p.add_argument("--repeat", type=int, help="cycles, overriding the scenario's own (0: until stopped)")
    p.add_argument("--follow", action="store_true", help="print each step as it takes effect; Ctrl-C stops it")
    p.add_argument("--stop", action="store_true", help="stop the running scenario: pristine forwarding")
    p.add_argument("--list", action="store_true", help="list the named scenarios")
    p.set_defaults(func=cmd_scenario)


def _describe(entry: dict[str, object]) -> str:
    late = entry.get("late_ms")
    when = f"late {late:.2f} ms" if isinstance(late, float) else "recorded for the harness"
    if entry.get("error"):
        when = f"FAILED: {entry['error']}"
    return f"  cycle {entry['cycle']} step {entry['step']}: {entry['action']} ({when})"


def cmd_scenario(opts: argparse.Namespace) -> int:
    if opts.list:
        for name, named in sorted(load_named().items()):
            s = named.scenario
            repeat = "until stopped" if s.repeat == 0 else f"x{s.repeat}"
            print(f"{name:15} {len(s.steps)} steps, cycle {s.cycle_ms / 1000:g} s, {repeat}: {named.about}")
        return 0
    if opts.stop:
        tb = Testbed(opts.instance)
        final = tb.router.call("scenario_stop")
        print(f"scenario {final.get('name') or ''}: {final['state']}; its directions are pristine")
        tb.close_connections()
        return 0
    if not opts.what:
        print("netbed: scenario needs NAME or FILE.yaml (see --list), or --stop", file=sys.stderr)
        return 2
    try:
        named = resolve(opts.what)
        scenario = named.scenario
        if opts.repeat is not None:
            scenario = parse_scenario(scenario.to_wire()["steps"], opts.repeat)
    except (ScenarioFileError, ScenarioError) as exc:
        print(f"netbed: {exc}", file=sys.stderr)
        return 2
    if any(not step.on_router for step in scenario.steps) and not opts.follow:
        print("netbed: this scenario has host faults (pause, resume, restart), which this command executes "
              "(the router cannot: they need Docker); run it with --follow", file=sys.stderr)
        return 2
    tb = Testbed(opts.instance)
    try:
        running = tb.router.scenario(scenario, name=named.name or opts.what)
        repeat = "until stopped" if scenario.repeat == 0 else f"{scenario.repeat} cycle(s)"
        print(f"scenario {running.name}: started, {len(scenario.steps)} steps, cycle {scenario.cycle_ms / 1000:g} s, "
              f"{repeat}")
        if opts.follow:
            shown = 0
            try:
                while True:
                    status = running.status()
                    for entry in status["timeline"][shown:]:
                        print(_describe(entry), flush=True)
                    shown = len(status["timeline"])
                    if status["state"] != "running":
                        print(f"scenario {running.name}: {status['state']}" +
                              (f": {status['error']}" if status.get("error") else ""))
                        return 0 if status["state"] == "finished" else 1
                    time.sleep(FOLLOW_POLL_S)
            except KeyboardInterrupt:
                running.stop()
                print(f"scenario {running.name}: stopped; its directions are pristine")
                return 130
        return 0
    finally:
        tb.close_connections()
