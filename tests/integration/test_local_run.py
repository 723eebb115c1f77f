"""The local end-to-end path on the real Docker engine.

These tests run the product as a user does (the ``flbed`` command, or ``ansible-playbook``)
against this machine. FederatedScope itself is replaced by the stand-in under
tests/fs_standin, which takes the same command line and writes the same files, unless a
test is marked ``framework`` (those need FLBED_FS_SOURCE, a FederatedScope checkout).
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, STANDIN, docker_ready, flbed, labelled, write_testbed

pytestmark = pytest.mark.integration


if not docker_ready():
    pytest.skip("needs a running Docker engine (make test starts one)", allow_module_level=True)


def test_provision_status_and_teardown(tmp_path, teardown_after):
    name = "it-provision"
    teardown_after(name)
    path = write_testbed(tmp_path, name)

    done = flbed("provision", path, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["hosts"]["localhost"]["failed"] == 0
    assert len(labelled("container", name)) == 3

    inspected = json.loads(subprocess.run(
        ["docker", "inspect", f"flbed-{name}-client-1"], capture_output=True, text=True,
        check=True).stdout)[0]
    assert inspected["HostConfig"]["Memory"] == 512 * 2**20
    assert inspected["HostConfig"]["NanoCpus"] == 0  # the quota binds once it listens
    assert inspected["Config"]["User"] == "10001:10001"
    assert inspected["HostConfig"]["CapDrop"] == ["ALL"]
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True
    assert inspected["Config"]["Labels"]["flbed.testbed"] == name

    status = flbed("status", name, "--json")
    assert status.returncode == 0, status.stderr
    seen = json.loads(status.stdout)["hosts"]["localhost"]["participants"]
    assert sorted(p["name"] for p in seen) == ["client-1", "client-2", "server"]
    assert {p["state"] for p in seen} == {"running"}

    again = flbed("provision", path, "--json")
    assert again.returncode == 0, again.stderr

    assert flbed("teardown", name).returncode == 0
    assert labelled("container", name) == [] and labelled("network", name) == []
    assert not os.path.exists(f"/var/lib/flbed/{name}")
    second = flbed("teardown", name)
    assert second.returncode == 0 and "(0 changes)" in second.stderr


def test_run_trains_collects_and_cleans_up(tmp_path, teardown_after):
    name = "it-run"
    teardown_after(name)
    runs = tmp_path / "runs"
    path = write_testbed(tmp_path, name, step_s=2.0)
    done = flbed("run", path, "--json", "--runs-root", str(runs))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "succeeded"
    assert summary["rounds_completed"] == summary["total_rounds"] == 3
    assert summary["wall_time_s"] > 0
    assert "test_loss" in summary["final_metrics"]
    assert [p["exit_code"] for p in summary["participants"]] == [0, 0, 0]
    assert re.search(r"round [1-3]/3", done.stderr)  # progress while training

    run_dir = summary["run_dir"]
    for participant in ("server", "client-1", "client-2"):
        folder = os.path.join(run_dir, "participants", participant)
        assert os.path.getsize(os.path.join(folder, "container.log")) > 0
        assert os.path.exists(os.path.join(folder, "config.yaml"))
        assert os.path.exists(os.path.join(folder, "out", "flbed", "eval_results.raw"))
    assert os.path.exists(os.path.join(run_dir, "testbed.yml"))
    assert json.load(open(os.path.join(run_dir, "plan.json")))["testbed"] == name
    assert os.stat(run_dir).st_mode & 0o077 == 0
    assert labelled("container", name) == [] and labelled("network", name) == []


def test_a_client_that_dies_fails_the_run_naming_it(tmp_path, teardown_after):
    name = "it-fail"
    teardown_after(name)
    path = write_testbed(tmp_path, name, rounds=20,
                         client_env={"FLBED_STANDIN_EXIT_AT_ROUND": "2"})
    started = time.monotonic()
    done = flbed("run", path, "--json", "--runs-root", str(tmp_path / "runs"))
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "failed"
    assert [f["name"] for f in summary["failures"]] == ["client-3"]
    assert "exited with status 3" in summary["reasons"][0]
    assert summary["failures"][0]["log_tail"].strip()
    assert summary["rounds_completed"] < 20
    assert elapsed < 300
    assert labelled("container", name) == []


def test_ansible_playbook_runs_the_same_experiment(tmp_path, teardown_after):
    name = "it-playbook"
    teardown_after(name)
    runs = tmp_path / "runs"
    env = dict(os.environ, FLBED_FS_SOURCE=STANDIN)
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
         "-i", "inventories/local", "playbooks/run.yml",
         "-e", f"testbed={write_testbed(tmp_path, name)}", "-e", f"flbed_runs_root={runs}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:]
    (summary_path,) = runs.glob(f"{name}/*/summary.json")
    assert json.loads(summary_path.read_text())["status"] == "succeeded"
    assert labelled("container", name) == []


@pytest.mark.framework
@pytest.mark.skipif(not os.environ.get("FLBED_FS_SOURCE"),
                    reason="needs the real FederatedScope: set FLBED_FS_SOURCE to a checkout")
def test_real_federatedscope_trains_on_the_default_testbed(tmp_path, teardown_after):
    teardown_after("default")
    done = flbed("run", str(REPO / "testbeds" / "default.yml"), "--json", "--runs-root",
                 str(tmp_path / "runs"), fs_source=os.environ["FLBED_FS_SOURCE"])
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "succeeded"
    assert summary["rounds_completed"] == 5
    assert summary["final_metrics"]["test_loss"] < 3877  # lower than after round 0
