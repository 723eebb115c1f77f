"""What flbed's benchmarks share: commands, timed Ansible plays, the machine they ran on, the
load beside them, FederatedScope's round times, and writing the results.

The scripts import it as ``bench.common`` after putting the repository on ``sys.path``.
"""

import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ROUND_START = re.compile(r"Starting (?:training|a new training round) \(Round #(\d+)\)")


def sh(argv, **kwargs):
    """Run ARGV, fail on a non-zero exit, return its stdout."""
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs).stdout


# ---------------------------------------------------------------- Ansible plays

def ansible_bin(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else shutil.which(name)


def write_play(tasks, hosts="localhost"):
    """A playbook of one play on HOSTS (local connection, no facts) running TASKS."""
    playbook = os.path.join(tempfile.mkdtemp(prefix="flbed-bench-"), "play.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        json.dump([{"hosts": hosts, "connection": "local", "gather_facts": False,
                    "tasks": tasks}], handle)
    return playbook


def time_ansible_playbook(tasks):
    """Seconds of one ``ansible-playbook`` run of TASKS on localhost, with flbed's config."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    started = time.monotonic()
    subprocess.run([ansible_bin("ansible-playbook"), "-i", "localhost,", write_play(tasks)],
                   check=True, cwd=REPO, env=env, capture_output=True)
    return time.monotonic() - started


def time_runner_play(tasks):
    """Seconds of TASKS on localhost run the way flbed runs its playbooks (ansible-runner,
    flbed's event handler, its local inventory), and the ``PlaybookResult`` with its
    per-task times."""
    sys.path.insert(0, REPO)
    from flbed import runner

    started = time.monotonic()
    result = runner.run_playbook(write_play(tasks), os.path.join(REPO, "inventories", "local"),
                                 {})
    if not result.ok:
        raise RuntimeError("play failed: %s" % result.failures)
    return time.monotonic() - started, result


# ---------------------------------------------------------------- the machine

def docker_info():
    try:
        return json.loads(sh(["docker", "info", "--format", "{{json .}}"]))
    except (subprocess.CalledProcessError, ValueError, FileNotFoundError):
        return {}


def machine():
    """Cores, memory, kernel, Docker engine and Ansible of this host."""
    info = docker_info()
    with open("/proc/meminfo", encoding="ascii") as handle:
        mem_kib = int(handle.readline().split()[1])
    try:
        ansible_core = sh([ansible_bin("ansible-playbook"), "--version"]).split("\n")[0]
    except (subprocess.CalledProcessError, TypeError):
        ansible_core = "unknown"
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 2 ** 20, 1),
            "kernel": platform.release(), "cpu": _cpu_model(),
            "docker": info.get("ServerVersion"), "cgroup": "v%s %s" % (
                info.get("CgroupVersion", "?"), info.get("CgroupDriver", "?")),
            "storage_driver": info.get("Driver"), "ansible": ansible_core,
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _cpu_model():
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


class LoadWatch:
    """Samples the 1-minute load average every second while a measurement runs; other work
    on the machine (other people's tests, builds) shows in it."""

    def __init__(self):
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(1.0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self):
        if not self.samples:
            return {}
        return {"min": round(min(self.samples), 2), "max": round(max(self.samples), 2),
                "mean": round(sum(self.samples) / len(self.samples), 2)}


# ---------------------------------------------------------------- FederatedScope's log

def log_time(line):
    """UTC time of a FederatedScope log line, which starts "2026-12-03 16:59:37,242"."""
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def round_starts(run_dir):
    """{round: time} of the server's "Starting training (Round #k)" lines."""
    starts = {}
    pattern = os.path.join(run_dir, "participants", "server", "out", "*", "exp_print.log")
    for path in glob.glob(pattern):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                match = ROUND_START.search(line)
                if match:
                    starts[int(match.group(1))] = log_time(line)
    return starts


# ---------------------------------------------------------------- results

def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)


def text_table(headers, rows):
    """Columns as wide as their widest cell; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row]
                                           for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        lines.append("  ".join(cell.rjust(width) if cell[:1].isdigit() else cell.ljust(width)
                               for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)
