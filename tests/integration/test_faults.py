"""Faults while a testbed trains: each ends the run, failed, within a bounded time.

Every test starts `flbed run` as a user does, waits until training has reached a given
point, then breaks something the way it breaks in a lab: a client's container is killed, a
client's radio goes silent (every packet on its interface dropped, inside its own network
namespace), the server's container is killed. The run must end with exit status 1, its
summary naming the participant at fault with its last log lines, within the fault timeout
plus what collecting and tearing down take. The overall timeout must end a run that would
train for ever.

The measured times (fault to the end of `flbed run`) are printed; run with -s to see them.
They are measurements, not tight assertions: the bound asserted leaves room for a loaded
machine.
"""

import glob
import json
import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO, STANDIN, flbed

pytestmark = pytest.mark.integration

WORKDIR_ROOT = "/var/lib/flbed"
FAULT_TIMEOUT_S = 20
# Collecting the results and tearing the testbed down after a fault was seen: 15-40 s here,
# far more while other tests load the machine.
WIND_DOWN_S = 240


def docker_ready():
    return subprocess.run(["docker", "info"], capture_output=True,
                          check=False).returncode == 0


if not docker_ready():
    pytest.skip("needs a running Docker engine (make test starts one)", allow_module_level=True)


@pytest.fixture
def teardown_after():
    names = []
    yield names.append
    for name in names:
        flbed("teardown", name, "-q")


def write_testbed(tmp_path, name, *, rounds=200, round_s=0.5, clients=2, timeout="10m",
                  fault_timeout=f"{FAULT_TIMEOUT_S}s", client_env=None):
    env = {"FLBED_STANDIN_ROUND_S": str(round_s), **(client_env or {})}
    testbed = {
        "name": name,
        "timeout": timeout,
        "fault_timeout": fault_timeout,
        "federatedscope": {"config": {"data": {"type": "toy"}, "model": {"type": "lr"},
                                      "federate": {"total_round_num": rounds}}},
        "profiles": {"small_device": {"extends": "raspberry_pi", "memory": "512m",
                                      "cpus": 0.5}},
        "server": {"profile": "small_device"},
        "clients": [{"profile": "small_device", "count": clients, "env": env}],
        "shaping": {"allow_missing": ["delay", "jitter", "loss"]},
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(testbed))
    return str(path)


class Run:
    """`flbed run --json` in the background, as a user would start it."""

    def __init__(self, path, tmp_path, fs_source=STANDIN):
        env = dict(os.environ, FLBED_FS_SOURCE=fs_source)
        self.stdout = open(tmp_path / "stdout.json", "w+", encoding="utf-8")
        self.stderr = open(tmp_path / "stderr.txt", "w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flbed", "run", path, "--json",
             "--runs-root", str(tmp_path / "runs")],
            cwd=REPO, env=env, stdout=self.stdout, stderr=self.stderr)

    def finish(self, timeout_s=1800):
        returncode = self.process.wait(timeout=timeout_s)
        ended = time.monotonic()
        self.stdout.seek(0)
        self.stderr.seek(0)
        return returncode, ended, self.stdout.read(), self.stderr.read()

    def running(self):
        return self.process.poll() is None

    def stop(self):
        if self.running():
            self.process.kill()
            self.process.wait()


@pytest.fixture
def runs():
    started = []
    yield lambda *args, **kwargs: started.append(Run(*args, **kwargs)) or started[-1]
    for run in started:
        run.stop()


def wait_for(predicate, run, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if not run.running():
            _, _, _, stderr = run.finish()
            raise AssertionError(f"flbed run ended before {what}: {stderr[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout_s} s")


def server_round(name):
    """The server's round in progress (from 1), from its log on this host; 0 before."""
    found = 0
    for path in glob.glob(f"{WORKDIR_ROOT}/{name}/server/out/**/exp_print.log",
                          recursive=True):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for match in re.finditer(r"Round #(\d+)", handle.read()):
                found = max(found, int(match.group(1)) + 1)
    return found


def container_pid(container):
    done = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def silence(container):
    """Drop every packet the container sends or receives on its link, from inside its
    network namespace: a device whose radio went dead. Its own loopback keeps working."""
    pid = container_pid(container)
    for chain, flag in (("OUTPUT", "-o"), ("INPUT", "-i")):
        subprocess.run(["nsenter", "-t", pid, "-n", "iptables", "-A", chain, flag, "eth0",
                        "-j", "DROP"], check=True, capture_output=True)


def judged(run, fault_at):
    returncode, ended, stdout, stderr = run.finish()
    assert returncode == 1, stderr[-3000:]
    summary = json.loads(stdout)
    return summary, ended - fault_at


def report(label, bound_s, summary):
    print(f"\n[faults] {label}: fault -> end of flbed run {bound_s:.1f} s; phases "
          f"{summary.get('phases_s')}; reasons {summary['reasons']}")


def assert_names(summary, name):
    assert summary["status"] == "failed"
    assert [f["name"] for f in summary["failures"]] == [name], summary["failures"]
    assert summary["failures"][0]["log_tail"].strip()


def test_a_client_killed_mid_run_fails_the_run_at_once(tmp_path, teardown_after, runs):
    name = "ft-kill-client"
    teardown_after(name)
    run = runs(write_testbed(tmp_path, name), tmp_path)
    wait_for(lambda: server_round(name) >= 3, run, 900, "round 3")

    fault_at = time.monotonic()
    subprocess.run(["docker", "kill", f"flbed-{name}-client-2"], check=True,
                   capture_output=True)
    summary, bound_s = judged(run, fault_at)
    report("client killed", bound_s, summary)

    assert_names(summary, "client-2")
    assert "exited with status 137" in summary["failures"][0]["reason"]
    assert not summary["stalled"] and not summary["timed_out"]
    assert 2 <= summary["rounds_completed"] < 200  # round 2 had begun
    assert bound_s < WIND_DOWN_S


def test_the_server_killed_mid_run_fails_the_run_at_once(tmp_path, teardown_after, runs):
    name = "ft-kill-server"
    teardown_after(name)
    run = runs(write_testbed(tmp_path, name), tmp_path)
    wait_for(lambda: server_round(name) >= 3, run, 900, "round 3")

    fault_at = time.monotonic()
    subprocess.run(["docker", "kill", f"flbed-{name}-server"], check=True,
                   capture_output=True)
    summary, bound_s = judged(run, fault_at)
    report("server killed", bound_s, summary)

    assert_names(summary, "server")
    assert "exited with status 137" in summary["failures"][0]["reason"]
    assert bound_s < WIND_DOWN_S


def test_a_client_that_cannot_reach_the_server_is_named_as_never_joined(
        tmp_path, teardown_after, runs):
    name = "ft-cut-join"
    teardown_after(name)
    run = runs(write_testbed(tmp_path, name), tmp_path)
    # The container has loaded the framework and waits for launch: cut it off before it joins.
    wait_for(lambda: os.path.exists(f"{WORKDIR_ROOT}/{name}/client-2/control/waiting"),
             run, 900, "client-2 waiting for launch")

    fault_at = time.monotonic()
    silence(f"flbed-{name}-client-2")
    summary, bound_s = judged(run, fault_at)
    report("client cut off before joining", bound_s, summary)

    assert_names(summary, "client-2")
    failure = summary["failures"][0]
    assert failure["reason"].startswith("never joined the server"), failure
    assert failure["stalled"] and summary["stalled"] and not summary["timed_out"]
    assert FAULT_TIMEOUT_S <= failure["quiet_s"] < FAULT_TIMEOUT_S + 15
    assert summary["rounds_completed"] == 0
    assert bound_s < FAULT_TIMEOUT_S + WIND_DOWN_S


def test_a_client_cut_off_mid_run_is_named_as_stopped_reporting(
        tmp_path, teardown_after, runs):
    name = "ft-cut-mid"
    teardown_after(name)
    run = runs(write_testbed(tmp_path, name), tmp_path)
    wait_for(lambda: server_round(name) >= 3, run, 900, "round 3")

    fault_at = time.monotonic()
    silence(f"flbed-{name}-client-2")
    summary, bound_s = judged(run, fault_at)
    report("client cut off mid-run", bound_s, summary)

    assert_names(summary, "client-2")
    failure = summary["failures"][0]
    assert failure["reason"].startswith("stopped reporting"), failure
    assert failure["stalled"] and FAULT_TIMEOUT_S <= failure["quiet_s"] < FAULT_TIMEOUT_S + 15
    assert 2 <= summary["rounds_completed"] < 200
    assert bound_s < FAULT_TIMEOUT_S + WIND_DOWN_S


def test_a_slow_round_that_computes_is_not_a_fault(tmp_path, teardown_after):
    """A client that computes for longer than the fault timeout in one round is slow, not
    stuck: its CPU use is the sign of progress (the stand-in's training computes here)."""
    name = "ft-slow"
    teardown_after(name)
    path = write_testbed(tmp_path, name, rounds=2, round_s=12, fault_timeout="5s",
                         client_env={"FLBED_STANDIN_TRAIN_BUSY": "1"})
    done = flbed("run", path, "--json", "--runs-root", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "succeeded" and not summary["stalled"]
    assert summary["wall_time_s"] > 2 * 12


def test_a_run_that_would_train_for_ever_ends_at_its_timeout(tmp_path, teardown_after):
    name = "ft-timeout"
    teardown_after(name)
    path = write_testbed(tmp_path, name, rounds=100000, round_s=0.3, timeout="30s")
    started = time.monotonic()
    done = flbed("run", path, "--json", "--runs-root", str(tmp_path / "runs"))
    elapsed_s = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    print(f"\n[faults] timeout 30 s: training ran {summary['wall_time_s']} s, flbed run "
          f"{elapsed_s:.1f} s in all; phases {summary.get('phases_s')}")

    assert summary["status"] == "failed" and summary["timed_out"]
    assert "the run passed its timeout of 30 s" in summary["reasons"]
    assert summary["failures"] == [] and not summary["stalled"]
    assert 30 <= summary["wall_time_s"] < 30 + 30
    assert 0 < summary["rounds_completed"] < 100000
