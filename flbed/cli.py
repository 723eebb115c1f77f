"""The ``flbed`` command line: thin commands over schema, plan, runner and results.

Exit codes: 0 done, 1 the run or a host failed, 2 bad input (nothing was started).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from . import __version__, inventory as inventory_lib, plan as plan_lib, plots, report, \
    results, schema
from . import calibration as calibration_lib, verify as verify_lib
from .errors import FlbedError, InputError, RunError
from .profiles import BUILTIN_PROFILES
from .runner import PLAN_TASK, REPO_DIR, run_playbook, stop_leftover_runs
from .units import format_bytes, format_rate

DEFAULT_INVENTORY = "inventories/local"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def say(text=""):
    print(text, file=sys.stderr, flush=True)


class Progress:
    """Prints one line per play and per step of a second or more, with how long it took.

    A step still running after LONG_STEP_S is announced, then reported every REMIND_S, so
    a slow image build or a long training shows life.
    """

    LONG_STEP_S, REMIND_S = 10.0, 30.0

    def __init__(self, enabled, total_rounds=None):
        self.enabled = enabled
        self.total_rounds = total_rounds
        self.step, self.step_started, self.reminded_at = None, time.monotonic(), None
        self.last_round = None
        self.lock = threading.Lock()
        if enabled:
            threading.Thread(target=self._remind, name="flbed-progress", daemon=True).start()

    def __call__(self, kind, value):
        if not self.enabled:
            return
        with self.lock:
            self._show(kind, value)

    def _show(self, kind, value):
        if kind == "play":
            self._close_step()
            self.step = None
            say(f"== {value}")
        elif kind == "task":
            self._close_step()
            self.step, self.step_started, self.reminded_at = value, time.monotonic(), None
        elif kind == "round" and value != self.last_round:
            self.last_round = value
            say(f"   round {value}/{self.total_rounds or '?'}")
        elif kind == "warning":
            say(f"warning: {value}")
        elif kind == "failure":
            where = "unreachable" if value.unreachable else "failed"
            say(f"!! {value.host} {where} at '{value.task}': {value.message}")

    def _remind(self):
        while True:
            time.sleep(1.0)
            with self.lock:
                running = time.monotonic() - self.step_started
                due = self.LONG_STEP_S if self.reminded_at is None else \
                    self.reminded_at + self.REMIND_S
                if self.step and running >= due:
                    self.reminded_at = running
                    say(f"   {self.step} ... {running:.0f} s")

    def _close_step(self):
        elapsed = time.monotonic() - self.step_started
        if self.step and elapsed >= 1.0:
            say(f"   {self.step} ({elapsed:.1f} s)")

    def close(self):
        if self.enabled:
            with self.lock:
                self._close_step()
                self.step = None


# ---------------------------------------------------------------- checking and planning

def load_plan(args, run_id=None, calibrating=False):
    """Check the file against the inventory; InputError before anything starts."""
    testbed = schema.load_testbed(args.file)
    inventory = inventory_lib.load_inventory(args.inventory)
    return testbed, plan_lib.make_plan(testbed, inventory, run_id=run_id,
                                       runs_root=os.path.abspath(args.runs_root),
                                       calibrating=calibrating)


def cmd_validate(args):
    testbed, plan = load_plan(args)
    hosts = len(plan["hosts"])
    say(f"testbed {testbed.name!r} is valid: 1 server and {testbed.client_count} clients on "
        f"{hosts} host{'s' if hosts > 1 else ''}")
    for warning in plan["warnings"]:
        say(f"warning: {warning}")
    return EXIT_OK


def cmd_plan(args):
    _, plan = load_plan(args)
    if args.json:
        print(json.dumps(plan, indent=2))
        return EXIT_OK
    rows = [("participant", "role", "host", "profile", "cpus", "memory", "up", "down",
             "delay", "loss")]
    for p in plan["participants"]:
        link = p["link"]
        rows.append((p["name"], p["role"], p["host"], p["profile"], _cpus_text(p),
                     format_bytes(p["memory_bytes"]), _rate(link["up_rate_bps"]),
                     _rate(link["down_rate_bps"]), f"{link['delay_ms']:g}ms",
                     f"{link['loss_pct']:g}%"))
    print(table(rows))
    for warning in plan["warnings"]:
        say(f"warning: {warning}")
    return EXIT_OK


def _cpus_text(participant):
    """The quota as the plan table shows it, with the throughput it delivers, if stated."""
    if participant["cpus_from"] == plan_lib.CPUS_NATIVE:
        text = "host's own"
    else:
        text = f"{participant['cpus']:g}" if participant["cpus"] is not None else "-"
    if participant.get("throughput_steps_per_s") is not None:
        text += f" ({participant['throughput_steps_per_s']:g} steps/s)"
    return text


def _rate(bps):
    return format_rate(bps) if bps else "-"


def cmd_profiles(args):
    rows = [("profile", "device", "memory", "cpus", "up", "down", "delay", "loss")]
    for name, body in BUILTIN_PROFILES.items():
        link = body["link"]
        rows.append((name, body["description"], body["memory"], f"{body['cpus']:g}",
                     link["up"], link["down"], link["delay"], link["loss"]))
    print(table(rows))
    return EXIT_OK


def table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
                     .rstrip() for row in rows)


# ---------------------------------------------------------------- acting on hosts

def playbook(args, name, extravars, *, total_rounds=None, check=False, keep_results=()):
    progress = Progress(not args.quiet, total_rounds)  # stderr: --json output stays clean
    testbed = extravars.get("testbed_name") or getattr(args, "testbed_name", "")
    result = run_playbook(name, args.inventory, extravars, progress=progress, check=check,
                          keep_results=keep_results, testbed=testbed)
    progress.close()
    plan_failures = [f for f in result.failures if f.task == PLAN_TASK]
    if plan_failures:
        raise InputError(plan_failures[0].message.replace("testbed refused:\n", "")
                         .splitlines())
    return result


IMAGE_INPUTS = os.path.join(REPO_DIR, "roles", "fl_image", "files", "image_inputs.py")


def check_fs_source(plan):
    """Stop before any host is touched when FederatedScope's source cannot be had.

    The fl_image role makes the same check for ``ansible-playbook`` users; this is the same
    script, run first so that a wrong source costs a second, not a host set-up.
    """
    done = subprocess.run([sys.executable, IMAGE_INPUTS, "probe-fs",
                           f"--source={plan['fs_source']}", "--git-timeout-s=20"],
                          capture_output=True, text=True, check=False)
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RunError(f"cannot check the FederatedScope source: {done.stderr.strip()}") \
            from None
    if "error" in answer:
        raise RunError(answer["error"])


def host_report(testbed, result):
    """What provision and teardown print with --json: per-host counts, failures, and where
    the time went (phases, and each task with its seconds and module calls)."""
    return {"testbed": testbed, "status": "ok" if result.ok else "failed",
            "hosts": result.counts(), "failures": [vars(f) for f in result.failures],
            "elapsed_s": round(result.elapsed_s, 3), "phases_s": result.phases_s,
            "tasks": result.tasks}


def cmd_provision(args):
    _, plan = load_plan(args)
    args.testbed_name = plan["testbed"]
    check_fs_source(plan)
    result = playbook(args, "provision.yml", {"testbed": plan["testbed_file"]},
                      check=args.check)
    report = dict(host_report(plan["testbed"], result), check=args.check,
                  changed_tasks=result.changed_tasks)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for host, counts in report["hosts"].items():
            say(f"{host}: " + " ".join(f"{key}={value}" for key, value in counts.items()))
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_run(args):
    _, plan = load_plan(args)
    args.testbed_name = plan["testbed"]
    check_fs_source(plan)
    extravars = {"testbed": plan["testbed_file"], "flbed_run_id": plan["run_id"],
                 "flbed_runs_root": os.path.abspath(args.runs_root),
                 "flbed_keep": bool(args.keep)}
    result = playbook(args, "run.yml", extravars, total_rounds=plan["total_rounds"])
    summary_path = os.path.join(plan["run_dir"], "summary.json")
    if not os.path.exists(summary_path):
        reasons = [f"{f.host}: {f.task}: {f.message}" for f in result.failures]
        raise RunError("the run failed before it could be judged: " + "; ".join(reasons))
    summary = results.load_summary(plan["run_dir"])
    summary["phases_s"] = result.phases_s
    results.write_summary(plan["run_dir"], summary)
    report.write_manifest(plan["run_dir"], result.phases_s)
    summary["run_dir"] = plan["run_dir"]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return EXIT_OK if summary["status"] == results.SUCCEEDED else EXIT_FAILED


def cmd_calibrate(args):
    _, plan = load_plan(args, calibrating=True)
    args.testbed_name = plan["testbed"]
    check_fs_source(plan)
    runs_root = os.path.abspath(args.runs_root)
    extravars = {"testbed": plan["testbed_file"], "flbed_runs_root": runs_root,
                 "fl_calibrate_measure_s": args.measure_s}
    if args.quotas:
        extravars["fl_calibrate_quotas"] = args.quotas
    result = playbook(args, "calibrate.yml", extravars)
    if not result.ok:
        reasons = [f"{f.host}: {f.task}: {f.message}" for f in result.failures]
        raise RunError("calibration failed: " + "; ".join(reasons))
    key = plan["workload"]["key"]
    records = [calibration_lib.load_record(runs_root, host, key) for host in plan["hosts"]]
    for record in records:
        for point in calibration_lib.starved_points(record):
            say(f"warning: {record['host']} was busy while it was calibrated: at "
                f"{point['cpus']:g} CPUs the workload got {point['cpus_used']:g}, so the speed "
                "measured there is too low; calibrate again when the host is quiet")
    if args.json:
        print(json.dumps({"workload_key": key, "hosts": records}, indent=2))
        return EXIT_OK
    rows = [("host", "cpus", "cpus used", "steps/s", "steps/s per cpu")]
    for record in records:
        for point in record["points"]:
            cpus = point["cpus"] or record["host_cpus"]
            label = f"{cpus:g}" + (" (all)" if not point["cpus"] else "")
            used = point.get("cpus_used")
            rows.append((record["host"], label, "-" if used is None else f"{used:.3g}",
                         f"{point['steps_per_s']:.4g}", f"{point['steps_per_s'] / cpus:.4g}"))
    print(table(rows))
    say(f"workload {key} recorded under "
        f"{os.path.join(runs_root, calibration_lib.RECORD_DIR)}")
    return EXIT_OK


def print_summary(summary):
    print(f"testbed {summary['testbed']}: {summary['status']}, "
          f"{summary['rounds_completed']}/{summary['total_rounds']} rounds, "
          f"{summary['wall_time_s']} s of training")
    if summary.get("phases_s"):
        print("  phases: " + ", ".join(f"{phase} {seconds:.1f} s"
                                       for phase, seconds in summary["phases_s"].items()))
    for key, value in sorted(summary["final_metrics"].items()):
        print(f"  {key} = {value:.6g}")
    rows = [("participant", "role", "host", "profile", "exit")]
    rows += [(p["name"], p["role"], p["host"], p["profile"],
              "-" if p["exit_code"] is None else p["exit_code"])
             for p in summary["participants"]]
    print(table(rows))
    for reason in summary["reasons"]:
        print(f"failed: {reason}")
    for failure in summary["failures"]:
        if failure.get("log_tail"):
            print(f"--- last log lines of {failure['name']} ---\n{failure['log_tail'].rstrip()}")
    print(f"results: {summary['run_dir']}")


def cmd_results(args):
    """Tables (and plots, unless --no-plots) of one run directory."""
    run = report.load_run(args.run_dir)
    if not os.path.exists(os.path.join(args.run_dir, "manifest.json")):
        report.write_manifest(args.run_dir)  # a run made by ansible-playbook alone has none
    written = [] if args.no_plots else plots.write_plots(run)
    if args.json:
        print(json.dumps(dict(report.report_json(run), plots=written), indent=2))
    else:
        print(f"rounds ({run.summary.get('status', 'not judged')}):")
        print(report.rounds_table(run) if run.rounds else "  none evaluated")
        print("\nparticipants:")
        print(report.participants_table(run))
        for path in written:
            say(f"plot: {path}")
    for gap in run.missing:
        say(f"missing: {gap}")
    return EXIT_OK


def cmd_compare(args):
    comparison = report.compare(args.run_dirs, args.target)
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        print(report.compare_table(comparison))
    for run_dir, gaps in comparison["missing"].items():
        for gap in gaps:
            say(f"missing in {run_dir}: {gap}")
    return EXIT_OK


def cmd_status(args):
    result = playbook(args, "status.yml", {"testbed_name": args.name},
                      keep_results=["Read the state of the testbed's containers"])
    found = result.results.get("Read the state of the testbed's containers", {})
    hosts = {host: {"participants": res.get("participants", []), "round": res.get("round")}
             for host, res in sorted(found.items())}
    state = {"testbed": args.name, "hosts": hosts,
             "failures": [vars(f) for f in result.failures]}
    if args.json:
        print(json.dumps(state, indent=2))
    else:
        rows = [("participant", "host", "container", "state", "exit")]
        for host, seen in hosts.items():
            rows += [(p["name"], host, p["container"], p["state"],
                      "-" if p["exit_code"] is None else p["exit_code"])
                     for p in seen["participants"]]
        print(table(rows) if len(rows) > 1 else f"testbed {args.name!r} has no containers")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_teardown(args):
    stop_leftover_runs(args.name)
    result = playbook(args, "teardown.yml", {"testbed_name": args.name})
    removed = sum(c.get("changed", 0) for c in result.counts().values())
    if result.ok:
        say(f"testbed {args.name!r} torn down ({removed} changes)")
    else:
        first = {}
        for failure in result.failures:
            first.setdefault(failure.host, failure)
        clean = sorted(set(result.counts()) - set(first))
        say(f"teardown of {args.name!r} failed on " + "; ".join(
            f"{f.host} ({'unreachable' if f.unreachable else 'failed'}: {f.message})"
            for f in first.values())
            + (f"; torn down on {', '.join(clean)}" if clean else ""))
    if args.json:
        print(json.dumps(host_report(args.name, result), indent=2))
    return EXIT_OK if result.ok else EXIT_FAILED


VERIFY_TASK = "Judge the links against their shaping"


def cmd_verify(args):
    extravars = {"testbed_name": args.name}
    if args.tolerance is not None:
        if not 0 < args.tolerance < 100:
            raise InputError(f"--tolerance: {args.tolerance:g} is not allowed; use a percentage "
                             "between 0 and 100")
        extravars["flbed_verify_tolerance_pct"] = args.tolerance
    result = playbook(args, "verify.yml", extravars, keep_results=[VERIFY_TASK])
    judged = result.results.get(VERIFY_TASK, {}).values()
    report = next((r.get("ansible_facts", {}).get("flbed_verify_report") for r in judged), None)
    if report is None:
        reasons = [f"{f.host}: {f.task}: {f.message}" for f in result.failures]
        raise RunError(f"could not verify the links of {args.name!r}: "
                       + ("; ".join(reasons) or "no host measured anything"))
    path = verify_lib.report_path(os.path.abspath(args.runs_root), args.name,
                                  report["server"].get("created"))
    verify_lib.write_report(report, path)
    if args.json:
        print(json.dumps(dict(report, path=path), indent=2))
    else:
        print(verify_lib.render_table(report))
        say(verify_lib.summary_line(report))
        say(f"written to {path}")
    return EXIT_OK if report["ok"] and result.ok else EXIT_FAILED


# ---------------------------------------------------------------- entry point

def build_parser():
    parser = argparse.ArgumentParser(prog="flbed", description=(
        "Emulate federated-learning edge fleets: FederatedScope in Docker containers "
        "limited and shaped like real devices, provisioned by Ansible."))
    parser.add_argument("--version", action="version", version=f"flbed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, handler, help_text, *, file=False, name_arg=False, json_flag=False):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if file:
            sub.add_argument("file", metavar="FILE", help="testbed file (YAML)")
        if name_arg:
            sub.add_argument("name", metavar="NAME", help="testbed name")
        if file or name_arg:
            sub.add_argument("-i", "--inventory", default=DEFAULT_INVENTORY,
                             help="Ansible inventory of Docker hosts "
                                  f"(default {DEFAULT_INVENTORY})")
            sub.add_argument("--runs-root", default="runs", help="where run directories go")
            sub.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
        sub.add_argument("--json", action="store_true", default=False,
                         help="print one JSON object" if json_flag else argparse.SUPPRESS)
        sub.set_defaults(handler=handler)
        return sub

    add("validate", cmd_validate, "check a testbed file against the inventory", file=True)
    add("plan", cmd_plan, "show where each participant runs and how it is limited",
        file=True, json_flag=True)
    provision = add("provision", cmd_provision, "make the testbed's containers ready, shaped",
                    file=True, json_flag=True)
    provision.add_argument("--check", action="store_true",
                           help="report what would change and change nothing")
    run = add("run", cmd_run, "provision, train, collect results and tear down",
              file=True, json_flag=True)
    run.add_argument("--keep", action="store_true", help="leave the testbed running")
    calibrate = add("calibrate", cmd_calibrate, "measure how fast each host trains the "
                    "testbed's model, for profiles that state a throughput",
                    file=True, json_flag=True)
    calibrate.add_argument("--quotas", type=_quota_list, metavar="CPUS,...",
                           help="CPU quotas to measure at, e.g. 0.1,0.5,1 (default "
                                + ",".join(f"{q:g}" for q in calibration_lib.DEFAULT_QUOTAS)
                                + "); full speed is always measured")
    calibrate.add_argument("--measure-s", type=_measure_s, default=calibration_lib.DEFAULT_MEASURE_S,
                           metavar="S", help="seconds of training per measurement")
    add("status", cmd_status, "show a testbed's containers on every host",
        name_arg=True, json_flag=True)
    add("teardown", cmd_teardown, "remove everything a testbed made, on every host",
        name_arg=True, json_flag=True)
    verify = add("verify", cmd_verify, "measure each client's link to the server and judge it "
                 "against its shaping", name_arg=True, json_flag=True)
    verify.add_argument("--tolerance", type=float, metavar="PCT",
                        help=f"flag a rate further than PCT %% from the expected one "
                             f"(default {verify_lib.DEFAULT_TOLERANCE_PCT:g})")
    add("profiles", cmd_profiles, "list the built-in device profiles")
    shown = add("results", cmd_results, "tables and plots of a run directory",
                json_flag=True)
    shown.add_argument("run_dir", metavar="RUN_DIR", help="runs/<testbed>/<run_id>/")
    shown.add_argument("--no-plots", action="store_true", help="write no PNG files")
    compared = add("compare", cmd_compare, "compare runs side by side", json_flag=True)
    compared.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="run directories")
    compared.add_argument("--target", help="a metric to reach, e.g. test_loss<=0.5: when "
                          "(round, seconds of training) each run first reached it")
    return parser


def _quota_list(text):
    try:
        quotas = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        quotas = []
    if not quotas or any(not 0.01 <= quota <= 256 for quota in quotas):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of CPU quotas; use numbers "
                                         "of host cores from 0.01 to 256, e.g. 0.1,0.5,1")
    return quotas


def _measure_s(text):
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0.1 <= seconds <= 600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a measuring time; use seconds "
                                         "from 0.1 to 600")
    return seconds


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "name", None) and not schema.NAME_PATTERN.fullmatch(args.name):
        args.handler = None
        problem = f"NAME: {args.name!r} is not a testbed name; {schema.NAME_RULE}"
        return _fail_input(InputError(problem))
    try:
        return args.handler(args)
    except InputError as error:
        return _fail_input(error)
    except FlbedError as error:
        say(f"flbed: {error}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("flbed: interrupted; `flbed teardown NAME` removes what was started")
        return EXIT_FAILED


def _fail_input(error):
    for problem in error.problems:
        say(f"flbed: {problem}")
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
