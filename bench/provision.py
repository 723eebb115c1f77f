#!/usr/bin/env python3
"""Benchmark of provisioning and scale (not a test): what flbed costs against doing it by hand,
how much memory it takes, and how many FederatedScope clients this host carries.

1. Provision and teardown of N shaped participants (a server and N-1 clients; N = 10 and 50)
   with the real CLI (``flbed provision FILE --json``, ``flbed teardown NAME --json``), and
   the same work done by a hand-written bash baseline in the same run: ``docker network
   create``, per participant its directories and config, ``docker run -d`` with
   the same limits, user, read-only root, dropped capabilities, labels, mounts, command and
   image, a wait until every participant has loaded the framework (its ``control/waiting``
   file, as flbed waits), then per container ``nsenter -t PID -n tc`` with the commands
   flbed_tc plans (egress TBF, ingress redirect to an ifb, TBF on the ifb); teardown by
   ``docker rm -f`` per container, ``docker network rm`` and removing the directories (the
   ifb goes with the container's namespace, as in flbed's teardown). Both sides use the
   stand-in participant image (tests/fs_standin), made by a warm-up provision of a
   one-client testbed that is not timed; that warm-up also records the image's idle memory,
   so no timed run starts flbed's memory probe. The quota is set at creation
   (``throttle_from_start``) so both sides start containers with ``--cpus``.

   Shaping time: flbed's is the net_shaping task (one flbed_link run for the host), from
   ``--json``; the baseline's is its tc loop alone.

   Ansible's overhead: the wall time of the command less the time modules spent on the work.
   Of the per-task times in ``--json``, tasks that only steer Ansible (set_fact, assert,
   debug, fail, include/import, add_host, stat, slurp, meta) count whole as overhead, and so
   does all time outside tasks (the wrapper's and ansible-playbook's start-up, inventory,
   play starts). In the other tasks each module run also carries Ansible's fixed cost of
   running a module (templating, packing and starting it); that cost is measured in the same
   run as the time per item of a loop of ``ansible.builtin.ping`` on localhost through flbed's
   runner (just before each N's flbed runs, under the same load), and counted as overhead
   once per module run. The share is overhead / wall time.

2. Memory: the working set of idle clients (provisioned and waiting for launch; the
   median of the 10-participant testbed's clients for the stand-in, and of a real
   one-client testbed with FLBED_FS_SOURCE), and the controller's: the peak, sampled every
   0.5 s from /proc during each ``flbed run``, of the flbed process alone (RSS) and of it with
   all its descendants (ansible-playbook, its forks, the modules; summed PSS, so shared pages
   count once).

3. With FLBED_FS_SOURCE (a FederatedScope checkout): ``flbed run`` of toy data and logistic
   regression for 3 rounds at 10, 25 and 50 clients (server 1 GB / 0.5 CPU, clients
   400 MB / 0.15 CPU): whether it finished, wall time per round from the server's log (round
   0 apart: it also pays each client's first training step at its quota), the run's wall
   time and its phases. Without it, this part is skipped (the stand-in does not load the
   framework) and a stand-in run of 10 clients gives the controller's memory.

Needs root and Docker. From the repository root:
    [FLBED_FS_SOURCE=/path/to/FederatedScope] .venv/bin/python bench/provision.py \
        [--counts 10 50] [--clients 10 25 50] [--skip-provisioning | --skip-scale] \
        [--out runs/bench/provision.json]
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
sys.path.insert(0, REPO)

import flbed_cgroup  # noqa: E402
import flbed_tc  # noqa: E402
from bench import common  # noqa: E402
from tests.conftest import freeze_standin  # noqa: E402

PREFIX = "bench-"
LINK = {"up": "5mbit", "down": "10mbit"}
STEERING_ACTIONS = {
    "set_fact", "assert", "debug", "fail", "include_tasks", "import_tasks", "include_role",
    "import_role", "include_vars", "add_host", "stat", "slurp", "meta", "group_by",
}
FS_SETTINGS = {"data": {"type": "toy"}, "model": {"type": "lr"}}
TRAINING_FINISHED = "Server: Training is finished"


# ---------------------------------------------------------------- testbed files

def testbed(name, participants, *, client_memory="256m", client_cpus=0.25,
            server_memory="512m", server_cpus=0.5, rounds=3, from_start=True):
    """A testbed of one server and PARTICIPANTS-1 clients with a rate-shaped link each."""
    link = dict(LINK)
    return {
        "name": name,
        "timeout": "25m",
        "federatedscope": {"throttle_from_start": from_start,
                           "config": dict(FS_SETTINGS,
                                          federate={"total_round_num": rounds})},
        "profiles": {
            "bench_server": {"extends": "edge_server", "memory": server_memory,
                             "cpus": server_cpus, "link": link},
            "bench_client": {"extends": "smartphone_low", "memory": client_memory,
                             "cpus": client_cpus, "link": link}},
        "server": {"profile": "bench_server"},
        "clients": [{"profile": "bench_client", "count": participants - 1}],
        "shaping": {"allow_missing": ["delay", "jitter", "loss"]},
    }


def save(folder, spec):
    path = os.path.join(folder, spec["name"] + ".yml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec, handle)
    return path


# ---------------------------------------------------------------- the flbed CLI

def flbed(fs_source, *args, timeout=3600):
    """Run the flbed CLI as a user does; (seconds, its --json answer or None, stderr)."""
    env = dict(os.environ, FLBED_FS_SOURCE=fs_source)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flbed", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - started
    try:
        answer = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        answer = None
    return seconds, answer, done.stderr


def provision(fs_source, path):
    seconds, report, stderr = flbed(fs_source, "provision", path, "--json")
    if not report or report["status"] != "ok":
        raise RuntimeError("flbed provision %s failed: %s" % (path, stderr[-1500:]))
    return seconds, report


def teardown(fs_source, name):
    seconds, report, stderr = flbed(fs_source, "teardown", name, "--json")
    if not report or report["status"] != "ok":
        raise RuntimeError("flbed teardown %s failed: %s" % (name, stderr[-1500:]))
    return seconds, report


def plan(fs_source, path):
    _, answer, stderr = flbed(fs_source, "plan", path, "--json")
    if not answer:
        raise RuntimeError("flbed plan %s failed: %s" % (path, stderr[-1500:]))
    return answer


def labelled_containers(name):
    return common.sh(["docker", "ps", "-aq", "--filter",
                      "label=flbed.testbed=" + name]).split()


def remove_labelled(name):
    """Whatever of testbed NAME is left after a failure: containers, network, directory."""
    containers = labelled_containers(name)
    if containers:
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True)
    networks = common.sh(["docker", "network", "ls", "-q", "--filter",
                          "label=flbed.testbed=" + name]).split()
    if networks:
        subprocess.run(["docker", "network", "rm", *networks], capture_output=True)
    shutil.rmtree(os.path.join("/var/lib/flbed", name), ignore_errors=True)


# ---------------------------------------------------------------- Ansible's share

def module_run_cost_s(items=40):
    """Seconds Ansible needs per module run of a module that does nothing."""
    _, result = common.time_runner_play([{"ansible.builtin.ping": {},
                                          "loop": list(range(items))}])
    task = next(t for t in result.tasks if t["action"].endswith("ping"))
    return task["seconds"] / task["calls"]


def split_overhead(report, run_cost_s):
    """{wall_s, module_s, ansible_s, ansible_share}: see the module's docstring."""
    module_s = 0.0
    for task in report["tasks"]:
        if task["action"].rsplit(".", 1)[-1] in STEERING_ACTIONS:
            continue
        module_s += max(task["seconds"] - task["calls"] * run_cost_s, 0.0)
    wall_s = report["wall_s"]
    ansible_s = wall_s - module_s
    return {"wall_s": round(wall_s, 2), "module_s": round(module_s, 2),
            "ansible_s": round(ansible_s, 2), "ansible_share": round(ansible_s / wall_s, 3)}


def task_seconds(report, role):
    return round(sum(t["seconds"] for t in report["tasks"] if t["role"] == role), 2)


def tasks_by_time(report):
    """Every task of the report, slowest first, with its seconds and module runs."""
    tasks = sorted(report["tasks"], key=lambda t: -t["seconds"])
    return [{k: t[k] for k in ("task", "action", "seconds", "calls")} for t in tasks]


# ---------------------------------------------------------------- the hand-written baseline

def docker_run_argv(participant, testbed_plan, image):
    """The `docker run` of one participant, with what fl_participant gives its container."""
    folder = os.path.join(testbed_plan["host_workdir"], participant["name"])
    memory = str(participant["memory_bytes"])
    argv = ["docker", "run", "-d", "--name", participant["container"],
            "--hostname", participant["container"], "--network", testbed_plan["network"],
            "--memory", memory, "--memory-swap", memory, "--cpus", str(participant["cpus"]),
            "--user", "10001:10001", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--read-only",
            "--tmpfs", "/tmp:size=256m", "--env", "HOME=/tmp", "--restart", "no"]
    for key in ("testbed", "participant", "role", "profile"):
        value = testbed_plan["testbed"] if key == "testbed" else participant[
            "name" if key == "participant" else key]
        argv += ["--label", "flbed.%s=%s" % (key, value)]
    for source, target, extra in (("config.yaml", "/flbed/config.yaml", ",readonly"),
                                  ("control", "/flbed/control", ""),
                                  ("out", "/flbed/out", "")):
        argv += ["--mount", "type=bind,source=%s/%s,target=%s%s" % (folder, source, target,
                                                                   extra)]
    return argv + [image, "--cfg", "/flbed/config.yaml", "--control", "/flbed/control",
                   "--listen", participant["listen"], "--fs-wait", "blocking", "--hold-join"]


def write_configs(testbed_plan):
    for participant in testbed_plan["participants"]:
        folder = os.path.join(testbed_plan["host_workdir"], participant["name"])
        for sub in ("control", "out"):
            os.makedirs(os.path.join(folder, sub), mode=0o700, exist_ok=True)
            os.chown(os.path.join(folder, sub), 10001, 10001)
        with open(os.path.join(folder, "config.yaml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(participant["fs_config"], handle)


def quoted(argv):
    return " ".join("'%s'" % a.replace("'", "'\\''") for a in argv)


def start_script(testbed_plan, image):
    lines = [quoted(["docker", "network", "create", "--label",
                     "flbed.testbed=" + testbed_plan["testbed"], testbed_plan["network"]])]
    lines += [quoted(docker_run_argv(p, testbed_plan, image)) + " >/dev/null"
              for p in testbed_plan["participants"]]
    waits = " ".join(os.path.join(testbed_plan["host_workdir"], p["name"], "control",
                                  "waiting") for p in testbed_plan["participants"])
    lines.append("for f in %s; do until [ -e \"$f\" ]; do sleep 0.1; done; done" % waits)
    return "\n".join(lines)


def shaping_script(testbed_plan):
    skip = testbed_plan["allow_missing"]
    lines = []
    for participant in testbed_plan["participants"]:
        wanted = flbed_tc.wanted_link(participant["link"], skip=skip)
        empty = {"upload": None, "download": None, "ingress_qdisc": False,
                 "redirect_ok": False, "ifb_exists": False, "ifb_up": False}
        commands = flbed_tc.plan_present(wanted, empty, "eth0", flbed_tc.ifb_name("eth0"))
        lines.append('pid=$(docker inspect -f "{{.State.Pid}}" %s)' % participant["container"])
        lines += ['nsenter -t "$pid" -n ' + quoted(argv) for argv in commands]
    return "\n".join(lines)


def teardown_script(testbed_plan):
    lines = ["docker rm -f %s >/dev/null" % p["container"]
             for p in testbed_plan["participants"]]
    lines.append("docker network rm %s >/dev/null" % testbed_plan["network"])
    lines.append("rm -rf %s" % testbed_plan["host_workdir"])
    return "\n".join(lines)


def timed_bash(script):
    started = time.monotonic()
    subprocess.run(["bash", "-e", "-c", script], check=True, capture_output=True, text=True)
    return time.monotonic() - started


def baseline(testbed_plan, image):
    """Seconds of the hand-written provision (start, shaping) and teardown."""
    started = time.monotonic()
    write_configs(testbed_plan)
    start_s = timed_bash(start_script(testbed_plan, image))
    shaping_s = timed_bash(shaping_script(testbed_plan))
    provision_s = time.monotonic() - started
    if len(labelled_containers(testbed_plan["testbed"])) != len(testbed_plan["participants"]):
        raise RuntimeError("the baseline did not start every container")
    teardown_s = timed_bash(teardown_script(testbed_plan))
    return {"provision_s": round(provision_s, 2), "start_s": round(start_s, 2),
            "shaping_s": round(shaping_s, 2), "teardown_s": round(teardown_s, 2)}


# ---------------------------------------------------------------- memory

def container_memory_bytes(container):
    """The container's working set (cgroup usage less inactive page cache, as docker stats
    counts it): its usage alone also holds image files it happened to read first."""
    pid = common.sh(["docker", "inspect", "-f", "{{.State.Pid}}", container]).strip()
    return flbed_cgroup.ContainerCgroups(int(pid)).memory()["working_set_bytes"]


def idle_client_mib(testbed_plan):
    """Median working set of the testbed's provisioned (idle) clients, in MiB."""
    usage = [container_memory_bytes(p["container"]) for p in testbed_plan["participants"]
             if p["role"] == "client"]
    return round(statistics.median(usage) / 2 ** 20, 1)


def _children():
    """{pid: [child pids]} of every process now."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rollup_kib(pid, key):
    try:
        with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class ControllerMemory:
    """Peak RSS of one process, and peak summed PSS of it and its descendants."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_rss_kib = 0
        self.peak_tree_pss_kib = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            tree, pids, index = _children(), [self.pid], 0
            while index < len(pids):
                pids += tree.get(pids[index], [])
                index += 1
            self.peak_rss_kib = max(self.peak_rss_kib, _rollup_kib(self.pid, "Rss"))
            self.peak_tree_pss_kib = max(self.peak_tree_pss_kib,
                                         sum(_rollup_kib(p, "Pss") for p in pids))
            self.peak_processes = max(self.peak_processes, len(pids))
            self._stop.wait(0.5)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        return {"flbed_rss_mib": round(self.peak_rss_kib / 1024, 1),
                "tree_pss_mib": round(self.peak_tree_pss_kib / 1024, 1),
                "processes": self.peak_processes}


def flbed_run(fs_source, path, runs_root, timeout_s):
    """``flbed run`` with the controller's memory sampled; (seconds, summary, memory)."""
    env = dict(os.environ, FLBED_FS_SOURCE=fs_source)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "flbed", "run", path, "--json",
                                "--runs-root", runs_root], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = ControllerMemory(process.pid).start()
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        memory = sampler.stop()
    seconds = time.monotonic() - started
    try:
        summary = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        summary = None
    if summary is None:
        summary = {"status": "error", "stderr": stderr[-1500:]}
    return seconds, summary, memory


# ---------------------------------------------------------------- the parts

def warm_up(folder, standin):
    """Build (or reuse) the stand-in image outside any timing; its reference."""
    name = PREFIX + "warm"
    path = save(folder, testbed(name, 2))
    try:
        provision(standin, path)
        return common.sh(["docker", "inspect", "-f", "{{.Config.Image}}",
                          "flbed-%s-server" % name]).strip()
    finally:
        teardown(standin, name)
        remove_labelled(name)


def bench_flbed(folder, standin, count, run_cost_s):
    name = "%sf%d" % (PREFIX, count)
    path = save(folder, testbed(name, count))
    testbed_plan = plan(standin, path)
    try:
        provision_s, provisioned = provision(standin, path)
        if len(labelled_containers(name)) != count:
            raise RuntimeError("flbed provision did not start %d containers" % count)
        idle_mib = idle_client_mib(testbed_plan)
        teardown_s, torn = teardown(standin, name)
    finally:
        remove_labelled(name)
    provisioned["wall_s"], torn["wall_s"] = provision_s, teardown_s
    return {"provision_s": round(provision_s, 2), "teardown_s": round(teardown_s, 2),
            "shaping_s": task_seconds(provisioned, "net_shaping"),
            "idle_client_mib": idle_mib,
            "provision_phases_s": provisioned["phases_s"],
            "provision_split": split_overhead(provisioned, run_cost_s),
            "teardown_split": split_overhead(torn, run_cost_s),
            "provision_tasks": tasks_by_time(provisioned),
            "teardown_tasks": tasks_by_time(torn)}


def bench_baseline(folder, standin, count, image):
    name = "%sb%d" % (PREFIX, count)
    testbed_plan = plan(standin, save(folder, testbed(name, count)))
    try:
        return baseline(testbed_plan, image)
    finally:
        remove_labelled(name)


def bench_provisioning(folder, standin, counts):
    image = warm_up(folder, standin)
    rows = []
    for count in counts:
        with common.LoadWatch() as load:
            run_cost_s = module_run_cost_s()
            row = {"participants": count, "module_run_cost_s": round(run_cost_s, 3),
                   "flbed": bench_flbed(folder, standin, count, run_cost_s),
                   "baseline": bench_baseline(folder, standin, count, image)}
        row["load"] = load.summary()
        for key in ("provision_s", "teardown_s", "shaping_s"):
            row[key.replace("_s", "_ratio")] = round(
                row["flbed"][key] / row["baseline"][key], 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"image": image, "rows": rows}


def real_idle_client_mib(folder, fs_source):
    name = PREFIX + "idle"
    path = save(folder, testbed(name, 2, client_memory="1g", from_start=False))
    try:
        provision(fs_source, path)
        return idle_client_mib(plan(fs_source, path))
    finally:
        teardown(fs_source, name)
        remove_labelled(name)


def training_finished(run_dir):
    """Time of the server's line that ends the last round, or None."""
    pattern = os.path.join(run_dir, "participants", "server", "out", "*", "exp_print.log")
    for path in glob.glob(pattern):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if TRAINING_FINISHED in line:
                    return common.log_time(line)
    return None


def round_seconds(run_dir):
    """Seconds of each round, from its start to the next one's (the last: to the server's
    end of training); round 0 also pays the clients' first training step at their quota."""
    starts = common.round_starts(run_dir)
    finished = training_finished(run_dir)
    if starts and finished:
        starts[max(starts) + 1] = finished
    rounds = sorted(starts)
    return [round(starts[b] - starts[a], 2) for a, b in zip(rounds, rounds[1:])]


def scale_entry(clients, seconds, summary, memory):
    per_round = round_seconds(summary["run_dir"]) if "run_dir" in summary else []
    return {"clients": clients, "status": summary.get("status"),
            "rounds_completed": summary.get("rounds_completed"),
            "run_s": round(seconds, 1), "round_s": per_round,
            "later_round_s": round(statistics.mean(per_round[1:]), 2)
            if len(per_round) > 1 else None,
            "phases_s": summary.get("phases_s"), "controller": memory,
            "error": summary.get("stderr")}


def bench_scale(folder, fs_source, client_counts, timeout_s):
    runs_root = os.path.join(folder, "runs")
    entries = []
    for clients in client_counts:
        name = "%ss%d" % (PREFIX, clients)
        path = save(folder, testbed(name, clients + 1, client_memory="400m", client_cpus=0.15,
                                    server_memory="1g", from_start=False))
        with common.LoadWatch() as load:
            try:
                entry = scale_entry(clients, *flbed_run(fs_source, path, runs_root, timeout_s))
            finally:
                remove_labelled(name)
        entry["load"] = load.summary()
        entries.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)
    return entries


def bench_controller_standin(folder, standin):
    name = PREFIX + "ctl"
    path = save(folder, testbed(name, 11, from_start=False))
    try:
        seconds, summary, memory = flbed_run(standin, path, os.path.join(folder, "runs"), 900)
    finally:
        remove_labelled(name)
    return {"clients": 10, "status": summary.get("status"), "run_s": round(seconds, 1),
            "controller": memory}


# ---------------------------------------------------------------- output

def provisioning_table(part):
    headers = ["N", "provision s", "baseline s", "ratio", "teardown s", "baseline s",
               "ratio", "shaping s", "baseline tc s", "ansible share prov/tear",
               "idle client MiB", "load"]
    rows = []
    for row in part["rows"]:
        flbed, base = row["flbed"], row["baseline"]
        rows.append([row["participants"], flbed["provision_s"], base["provision_s"],
                     row["provision_ratio"], flbed["teardown_s"], base["teardown_s"],
                     row["teardown_ratio"], flbed["shaping_s"], base["shaping_s"],
                     "%.2f / %.2f" % (flbed["provision_split"]["ansible_share"],
                                      flbed["teardown_split"]["ansible_share"]),
                     flbed["idle_client_mib"], row["load"].get("mean")])
    return common.text_table(headers, rows)


def scale_table(entries):
    headers = ["clients", "status", "rounds", "run s", "round 0 s", "later rounds s",
               "controller MiB", "tree MiB", "load"]
    rows = [[e["clients"], e["status"], e["rounds_completed"], e["run_s"],
             e["round_s"][0] if e["round_s"] else None, e["later_round_s"],
             e["controller"]["flbed_rss_mib"], e["controller"]["tree_pss_mib"],
             e["load"].get("mean")] for e in entries]
    return common.text_table(headers, rows)


def scale_part(folder, fs_source, standin, args):
    """The FederatedScope runs with FLBED_FS_SOURCE; without it a stand-in run, for the
    controller's memory only."""
    if fs_source:
        results = {"real_idle_client_mib": real_idle_client_mib(folder, fs_source),
                   "scale": bench_scale(folder, fs_source, args.clients, args.run_timeout)}
        print("\nidle real client: %s MiB" % results["real_idle_client_mib"])
        print(scale_table(results["scale"]))
        return results
    results = {"scale": "skipped: FLBED_FS_SOURCE is not set, and the stand-in does not "
                        "load FederatedScope, so its client counts say nothing",
               "controller_standin": bench_controller_standin(folder, standin)}
    print("\n" + results["scale"])
    print("controller during a stand-in run of 10 clients:",
          results["controller_standin"]["controller"])
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 50],
                        help="participants per provisioned testbed")
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 25, 50],
                        help="FederatedScope clients per run (needs FLBED_FS_SOURCE)")
    parser.add_argument("--run-timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--skip-provisioning", action="store_true")
    parser.add_argument("--skip-scale", action="store_true",
                        help="no FederatedScope runs, and no stand-in run for the controller")
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "bench", "provision.json"))
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("docker"):
        sys.exit("needs root and Docker")

    fs_source = os.environ.get("FLBED_FS_SOURCE")
    standin = freeze_standin()
    folder = tempfile.mkdtemp(prefix="flbed-bench-provision-")
    results = {"machine": common.machine()}
    if not args.skip_provisioning:
        results["provisioning"] = bench_provisioning(folder, standin, args.counts)
        print(provisioning_table(results["provisioning"]))
    if not args.skip_scale:
        results.update(scale_part(folder, fs_source, standin, args))
    common.write_json(args.out, results)
    print("\nwrote", args.out)


if __name__ == "__main__":
    main()
