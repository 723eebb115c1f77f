"""Nothing of a testbed outlives `flbed teardown`, even after `flbed run` was killed.

Each test starts `flbed run` as a user does, waits until it is provisioning or training,
and kills it with SIGKILL, the way a user's `kill -9` or the OOM killer ends it: no
handler runs, no `always` block, no removal of its own temporary files. `flbed teardown
NAME` must then find everything by the testbed's labels and names alone and remove it, and
a second teardown must have nothing left to do.
"""

import glob
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from tests.conftest import REPO, STANDIN, WORKDIR_ROOT, docker_ready, flbed, labelled, \
    write_testbed

pytestmark = pytest.mark.integration

if not docker_ready():
    pytest.skip("needs a running Docker engine (make test starts one)", allow_module_level=True)

ANSIBLE_TMP = pathlib.Path.home() / ".ansible" / "tmp"


class KilledRun:
    """`flbed run` in a session of its own, so that its whole process tree can be told."""

    def __init__(self, path, tmp_path):
        env = dict(os.environ, FLBED_FS_SOURCE=STANDIN)
        self.runs_root = tmp_path / "runs"
        self.stderr = open(tmp_path / "stderr.txt", "w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flbed", "run", path, "--runs-root", str(self.runs_root)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr,
            start_new_session=True)
        self.killed_pids = set()

    def wait_for(self, predicate, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                self.stderr.seek(0)
                raise AssertionError(f"flbed run ended before {what}: "
                                     f"{self.stderr.read()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {timeout_s} s")

    def kill_tree(self):
        """SIGKILL flbed and every process it started and that still descends from it.
        ansible-runner runs ansible-playbook on a pseudo-terminal, in a session of its
        own, so killing flbed's process group alone would not reach it. Each process is
        stopped first, so that none can react to the others' deaths."""
        tree = descendants(self.process.pid) + [self.process.pid]
        for pid in tree:
            _signal(pid, signal.SIGSTOP)
        for pid in tree:
            _signal(pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.killed_pids = set(tree)

    def kill_flbed_only(self):
        """SIGKILL the flbed process alone; returns the processes it had started."""
        tree = descendants(self.process.pid)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.killed_pids = set(tree) | {self.process.pid}
        return tree

    def stop(self):
        for pid in alive(self.killed_pids):
            _signal(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.kill_tree()


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def parents():
    """pid -> parent pid of every process on the machine."""
    found = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = pathlib.Path(stat).read_text()
        except OSError:
            continue
        found[int(stat.split("/")[2])] = int(text.rsplit(")", 1)[1].split()[1])
    return found


def descendants(root):
    parent_of = parents()
    tree, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parent_of.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def alive(pids):
    return sorted(pid for pid in pids if os.path.exists(f"/proc/{pid}")
                  and "Z" not in _state(pid))


def _state(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def holders_of(folder):
    """Processes holding a file under FOLDER open (also one already deleted)."""
    found = set()
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(folder + "/") or target == folder:
            found.add(int(fd.split("/")[2]))
    return sorted(found)


@pytest.fixture
def killed_runs():
    started = []
    yield lambda *args: started.append(KilledRun(*args)) or started[-1]
    for run in started:
        run.stop()


def server_round(name):
    found = 0
    for path in glob.glob(f"{WORKDIR_ROOT}/{name}/server/out/**/exp_print.log",
                          recursive=True):
        text = pathlib.Path(path).read_text(errors="replace")
        found = max([found] + [int(n) + 1 for n in re.findall(r"Round #(\d+)", text)])
    return found


def host_ifb_devices():
    shown = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                           check=True)
    return [link["ifname"] for link in json.loads(shown.stdout)
            if link["ifname"].startswith("ifb-flbed")]


def ansible_tmp_of(pids):
    """Ansible's temporary directories in ~/.ansible/tmp made by any of PIDS: the
    controller's ansible-local-<pid>..., a task's ansible-tmp-<time>-<pid>-<n>."""
    leftover = []
    for path in ANSIBLE_TMP.glob("**/ansible-*"):
        parts = path.name.split("-")
        if path.name.startswith("ansible-local-"):
            owner = next((pid for pid in pids if parts[2].startswith(str(pid))), None)
        else:
            owner = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else None
        if owner in pids:
            leftover.append(str(path))
    return leftover


def wait_until_gone(what, timeout_s=30):
    """The last value of WHAT(): empty once what a teardown stopped has ended."""
    deadline = time.monotonic() + timeout_s
    found = what()
    while found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = what()
    return found


def assert_nothing_left(name, run):
    workdir = f"{WORKDIR_ROOT}/{name}"
    first = flbed("teardown", name)
    assert first.returncode == 0, first.stderr[-3000:]

    assert labelled("container", name) == []
    assert labelled("network", name) == []
    assert host_ifb_devices() == []
    assert not os.path.exists(workdir)
    assert not os.path.exists(workdir + ".results.tar.gz")
    assert wait_until_gone(lambda: holders_of(workdir)) == [], "a process still writes there"
    assert alive(run.killed_pids) == []
    assert glob.glob(os.path.join(tempfile.gettempdir(), f"flbed-ansible-{name}-*")) == []
    assert wait_until_gone(lambda: ansible_tmp_of(run.killed_pids)) == []
    assert not (ANSIBLE_TMP / f"flbed-{name}").exists()
    for run_dir in run.runs_root.glob(f"{name}/*"):
        assert_owner_only(run_dir)

    second = flbed("teardown", name)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "(0 changes)" in second.stderr, second.stderr


def assert_owner_only(folder):
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        assert mode & 0o077 == 0 or path.is_symlink(), f"{path} is open to others: {mode:o}"


def test_killed_while_provisioning_leaves_nothing_after_teardown(
        tmp_path, killed_runs, teardown_after):
    name = "rel-leak-prov"
    teardown_after(name)
    run = killed_runs(write_testbed(tmp_path, name, rounds=50, step_s=1.0), tmp_path)
    run.wait_for(lambda: labelled("container", name), 900, "a container of the testbed")

    run.kill_tree()
    assert_nothing_left(name, run)


def test_killed_while_training_leaves_nothing_after_teardown(
        tmp_path, killed_runs, teardown_after):
    name = "rel-leak-train"
    teardown_after(name)
    run = killed_runs(write_testbed(tmp_path, name, rounds=200, step_s=1.0), tmp_path)
    run.wait_for(lambda: server_round(name) >= 2, 900, "round 2 on the server")

    run.kill_tree()
    assert_nothing_left(name, run)


def test_killing_flbed_alone_leaves_ansible_to_teardown(tmp_path, killed_runs, teardown_after):
    """ansible-runner starts ansible-playbook on a terminal of its own that ignores the
    hang-up, so killing flbed alone can leave it acting on the host until it next writes to
    that orphaned terminal; teardown must end it before removing anything, or it would go
    on making what teardown removes. Whether it is still alive when teardown starts depends
    on when it last wrote; either way nothing of the testbed, and no process, is left."""
    name = "rel-leak-flbed"
    teardown_after(name)
    run = killed_runs(write_testbed(tmp_path, name, rounds=50, step_s=1.0), tmp_path)
    run.wait_for(lambda: labelled("container", name), 900, "a container of the testbed")

    children = run.kill_flbed_only()
    assert children, "flbed had started ansible-playbook"
    assert_nothing_left(name, run)

