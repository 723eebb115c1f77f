"""Run flbed's playbooks through ansible-runner and turn its events into progress and results.

Every call gets a private data directory readable by its owner only, removed afterwards, so
the extra variables and artifacts of a run (which may carry inventory secrets) never stay on
disk.
"""

import glob
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field

import ansible_runner

log = logging.getLogger(__name__)

REPO_DIR = os.environ.get("FLBED_HOME") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
PLAYBOOK_DIR = os.path.join(REPO_DIR, "playbooks")
PLAN_TASK = "Check the testbed file and compute the plan"


def _search_path():
    """PATH with this Python's scripts first: its ansible-playbook, even when no virtual
    environment is active."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


@dataclass
class Failure:
    host: str
    task: str
    message: str
    unreachable: bool = False


# The phases of a run, by the role whose tasks make them up.
PHASES = {
    "docker_host": "host_setup", "fl_image": "image", "fl_network": "provision",
    "fl_participant": "provision", "net_shaping": "shaping", "fl_launch": "training",
    "fl_collect": "collect", "fl_teardown": "teardown",
}


# Plays that are a phase of their own; tasks outside roles count to their play's phase.
PLAY_PHASES = {
    "Learn the size of each Docker host": "planning", "Plan the testbed": "planning",
    "Open the run directory": "planning", "Judge the run": "summary",
}


@dataclass
class PlaybookResult:
    rc: int
    status: str
    stats: dict                                    # host -> {ok, changed, failed, ...}
    failures: list = field(default_factory=list)   # Failure
    results: dict = field(default_factory=dict)    # task name -> host -> module result
    warnings: list = field(default_factory=list)
    elapsed_s: float = 0.0
    phases_s: dict = field(default_factory=dict)   # phase -> seconds, see PHASES
    changed_tasks: dict = field(default_factory=dict)  # host -> names of tasks that changed
    tasks: list = field(default_factory=list)      # per task run: see _Events.task_times

    @property
    def ok(self):
        return self.rc == 0 and not self.failures

    def counts(self):
        """Per-host ok/changed/failed/unreachable/skipped counts, as Ansible's recap has them."""
        names = {"ok": "ok", "changed": "changed", "failures": "failed",
                 "dark": "unreachable", "skipped": "skipped", "rescued": "rescued"}
        hosts = set()
        for values in self.stats.values():
            if isinstance(values, dict):
                hosts.update(values)
        return {host: {names[key]: self.stats.get(key, {}).get(host, 0) for key in names}
                for host in sorted(hosts)}


class _Events:
    """Collects what flbed needs from the event stream and reports progress as it goes."""

    def __init__(self, progress, keep_results):
        self.progress = progress or (lambda kind, text: None)
        self.keep_results = set(keep_results)
        self.failures = []
        self.results = {}
        self.warnings = []
        self.phases_s = {}
        self.changed_tasks = {}
        self.task_times = []   # {task, role, action, seconds, calls}, in the order they ran
        self._phase, self._phase_started = None, None
        self._task, self._task_started = None, None

    def _enter_phase(self, phase, now):
        if self._phase:
            self.phases_s[self._phase] = self.phases_s.get(self._phase, 0.0) + (
                now - self._phase_started)
        self._phase, self._phase_started = phase, now

    def _enter_task(self, data, now):
        """Close the running task's record; a task lasts until the next one (or play) starts,
        on every host at once, and its calls count module runs (one per host and loop item)."""
        if self._task:
            self._task["seconds"] = round(now - self._task_started, 3)
            self.task_times.append(self._task)
        self._task, self._task_started = None, now
        if data is not None:
            self._task = {"task": data.get("task", ""), "role": data.get("role") or "",
                          "action": data.get("task_action", ""), "seconds": 0.0, "calls": 0}

    def _count_call(self, kind, data):
        if self._task is None or kind.startswith("runner_item_on_skipped"):
            return
        if kind.startswith("runner_item_on_") or not data.get("res", {}).get("results"):
            self._task["calls"] += 1

    def close(self):
        now = time.monotonic()
        self._enter_phase(None, now)
        self._enter_task(None, now)
        return {phase: round(seconds, 3) for phase, seconds in self.phases_s.items()}

    def __call__(self, event):
        kind = event.get("event")
        data = event.get("event_data", {})
        task = data.get("task", "")
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable") or \
                kind.startswith("runner_item_on_"):
            self._count_call(kind, data)
        if kind == "playbook_on_play_start":
            now = time.monotonic()
            self._enter_phase(PLAY_PHASES.get(data.get("play"), "other"), now)
            self._enter_task(None, now)
            self.progress("play", data.get("play", ""))
        elif kind == "playbook_on_task_start" and not data.get("is_conditional"):
            now = time.monotonic()
            if data.get("role") in PHASES:
                self._enter_phase(PHASES[data["role"]], now)
            self._enter_task(data, now)
            self.progress("task", task)
        elif kind == "runner_retry":
            self._retry(data.get("res", {}))
        elif kind == "runner_on_ok":
            self._ok(task, data)
        elif kind in ("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed") \
                and not data.get("ignore_errors"):
            self._failed(kind, task, data)
        return True  # keep the event in ansible-runner's own (temporary) artifacts

    def _retry(self, res):
        if res.get("round") is not None:
            self.progress("round", res["round"])

    def _ok(self, task, data):
        res = data.get("res", {})
        if res.get("changed"):
            self.changed_tasks.setdefault(data.get("host"), []).append(task)
        if task in self.keep_results:
            self.results.setdefault(task, {})[data.get("host")] = res
        if data.get("task_action") in ("ansible.builtin.debug", "debug") and \
                task.startswith("Warn"):
            # An empty loop reports ok with no message: nothing to warn about.
            for item in res.get("results", [res]):
                if item.get("msg") is None:
                    continue
                self.warnings.append(item.get("msg"))
                self.progress("warning", item.get("msg"))

    def _failed(self, kind, task, data):
        res = data.get("res", {})
        message = res.get("msg") or res.get("stderr") or res.get("reason") or "failed"
        if kind == "runner_on_failed" and res.get("results"):
            return  # a loop: each failed item was reported on its own
        failure = Failure(data.get("host", "?"), task, str(message).strip(),
                          unreachable=kind == "runner_on_unreachable")
        self.failures.append(failure)
        self.progress("failure", failure)


def private_dir_prefix(testbed):
    """Prefix of a run's temporary ansible-runner directory; the flbed process's id follows,
    so teardown can tell the leftovers of a wrapper that was killed from those in use."""
    return f"flbed-ansible-{testbed}-"


def leftover_private_dirs(testbed):
    """TESTBED's private data directories whose flbed process is gone."""
    prefix = os.path.join(tempfile.gettempdir(), private_dir_prefix(testbed))
    leftovers = []
    for path in glob.glob(prefix + "*"):
        owner = path[len(prefix):].split("-")[0]
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            leftovers.append(path)
    return leftovers


def _processes_of(private_dir):
    """The processes started for PRIVATE_DIR: ansible-playbook, its workers and the modules
    they run on this machine all inherit an environment that names it. ansible-runner
    ignores the hang-up of ansible-playbook's terminal, so they outlive a killed flbed and
    go on acting on the hosts."""
    needle = private_dir.encode()
    found = []
    for environ in glob.glob("/proc/[0-9]*/environ"):
        pid = int(environ.split("/")[2])
        try:
            with open(environ, "rb") as handle:
                named = needle in handle.read()
        except OSError:
            continue
        if named and pid != os.getpid():
            found.append(pid)
    return found


def stop_leftover_runs(testbed):
    """End the processes a killed flbed left acting on TESTBED from this machine, and remove
    their private data directories: before a teardown, so that none goes on creating what
    the teardown removes."""
    for private_dir in leftover_private_dirs(testbed):
        for pid in _processes_of(private_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(private_dir, ignore_errors=True)


def _ansible_env(private_dir):
    """ansible-playbook's environment; its own temporary files on the controller go inside
    the private data directory, so that they leave with it, even when a killed run leaves
    it to teardown."""
    return {"ANSIBLE_CONFIG": os.path.join(REPO_DIR, "ansible.cfg"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(private_dir, "tmp"),
            "ANSIBLE_FORCE_COLOR": "0", "PATH": _search_path()}


def run_playbook(name, inventory, extravars, *, progress=None, check=False,
                 keep_results=(), testbed=""):
    """Run ``playbooks/<name>`` against INVENTORY; returns a ``PlaybookResult``."""
    events = _Events(progress, keep_results)
    private_dir = tempfile.mkdtemp(prefix=f"{private_dir_prefix(testbed)}{os.getpid()}-")
    os.chmod(private_dir, 0o700)
    started = time.monotonic()
    try:
        runner = ansible_runner.run(
            private_data_dir=private_dir,
            project_dir=REPO_DIR,
            playbook=os.path.join(PLAYBOOK_DIR, name),
            inventory=os.path.abspath(inventory),
            extravars=extravars,
            envvars=_ansible_env(private_dir),
            cmdline="--check --diff" if check else None,
            event_handler=events,
            quiet=True,
            suppress_env_files=True,
        )
        stats = runner.stats or {}
        if runner.rc != 0 and not events.failures:
            # Ansible stopped before any task could fail: a syntax error, a missing binary.
            tail = runner.stdout.read().strip().splitlines()[-3:] if runner.stdout else []
            events.failures.append(Failure("controller", "ansible-playbook " + name,
                                           " ".join(tail) or f"exited with {runner.rc}"))
        return PlaybookResult(runner.rc, runner.status, stats, events.failures, events.results,
                              events.warnings, time.monotonic() - started, events.close(),
                              events.changed_tasks, events.task_times)
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
