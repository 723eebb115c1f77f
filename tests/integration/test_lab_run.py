"""A testbed spread over three Docker hosts, each reached by Ansible over SSH.

The hosts are containers on this machine with their own Docker engine and SSH server
(tests/integration/lab_hosts.py). The server runs on the first, one client on each of the
other two; the hosts share a swarm overlay network that flbed makes and removes. One test
cuts a host's link while the testbed trains, as a pulled cable would.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.lab_hosts import Lab, docker

STANDIN = str(REPO / "tests" / "fs_standin")
STEP_TIME = re.compile(r"^\s*(\S.*?) \((\d+\.\d+) s\)$", re.MULTILINE)
pytestmark = [pytest.mark.integration, pytest.mark.lab]


def missing_tools():
    if not shutil.which("docker") or docker("info", check=False).returncode != 0:
        return "needs a running Docker engine (make test starts one)"
    for tool in ("mmdebstrap", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            return f"needs {tool} (Debian packages mmdebstrap, openssh-client)"
    return None


if missing_tools():
    pytest.skip(missing_tools(), allow_module_level=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    hosts = Lab(tmp_path_factory.mktemp("lab"), ["lab1", "lab2", "lab3"])
    try:
        yield hosts.start(groups={"servers": ["lab1"], "clients": ["lab2", "lab3"]})
    finally:
        hosts.close()


def write_testbed(tmp_path, name, rounds=3, **settings):
    testbed = {
        "name": name,
        "timeout": "10m",
        "federatedscope": {"config": {"data": {"type": "toy"}, "model": {"type": "lr"},
                                      "federate": {"total_round_num": rounds}}},
        "profiles": {"small_device": {"extends": "raspberry_pi", "memory": "512m",
                                      "cpus": 0.5,
                                      "link": {"up": "5mbit", "down": "10mbit"}}},
        "server": {"profile": "small_device", "host": "servers"},
        "clients": [{"profile": "small_device", "count": 2, "host": "clients",
                     "env": {"FLBED_STANDIN_ROUND_S": "1.0"}}],
        "shaping": {"allow_missing": ["delay", "jitter", "loss"]},
        **settings,
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(testbed))
    return str(path)


def fs_env():
    return dict(os.environ, FLBED_FS_SOURCE=os.environ.get("FLBED_FS_SOURCE", STANDIN))


def flbed(*args, timeout=3600):
    env = fs_env()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flbed", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    print(f"flbed {args[0]}: rc {done.returncode} in {time.monotonic() - started:.1f} s")
    steps = sorted(((float(m.group(2)), m.group(1)) for m in STEP_TIME.finditer(done.stderr)),
                   reverse=True)
    for seconds, step in steps[:6]:  # where the time went (run with -s to see it)
        print(f"  {seconds:7.1f} s  {step}")
    return done


def left_on(lab, name):
    """What a testbed left on each lab host: containers, networks, swarm state, directory."""
    left = {}
    for host in lab.names:
        found = {
            "containers": lab.host_docker(host, "ps", "-aq", "--filter",
                                          f"label=flbed.testbed={name}").stdout.split(),
            "networks": lab.host_docker(host, "network", "ls", "-q", "--filter",
                                        f"label=flbed.testbed={name}").stdout.split(),
            "swarm": lab.host_docker(host, "info", "--format",
                                     "{{.Swarm.LocalNodeState}}").stdout.strip(),
            "workdir": docker("exec", lab.container(host), "test", "-e",
                              f"/var/lib/flbed/{name}", check=False).returncode == 0,
        }
        left[host] = found
    return left


def clean(left):
    return all(not v["containers"] and not v["networks"] and v["swarm"] == "inactive"
               and not v["workdir"] for v in left.values())


def shaped_qdiscs(lab, host, container):
    pid = lab.host_docker(host, "inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    return lab.ssh(host, f"nsenter -t {pid} -n tc -j qdisc show dev eth0").stdout


def test_provision_across_hosts_shapes_and_tears_down(lab, tmp_path):
    name = "lab-prov"
    path = write_testbed(tmp_path, name)
    try:
        done = flbed("provision", path, "-i", lab.inventory, "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert {"lab1", "lab2", "lab3"} <= set(report["hosts"])
        assert not any(counts["failed"] for counts in report["hosts"].values()), report

        placed = {host: lab.host_docker(host, "ps", "--format", "{{.Names}}", "--filter",
                                        f"label=flbed.testbed={name}").stdout.split()
                  for host in lab.names}
        assert placed == {"lab1": [f"flbed-{name}-server"],
                          "lab2": [f"flbed-{name}-client-1"],
                          "lab3": [f"flbed-{name}-client-2"]}
        overlay = json.loads(lab.host_docker(
            "lab1", "network", "inspect", f"flbed-{name}").stdout)[0]
        assert overlay["Driver"] == "overlay" and overlay["Attachable"] is True
        assert overlay["Labels"]["flbed.testbed"] == name

        # The server's host reaches a client on another host by the name it advertises.
        reach = lab.host_docker("lab1", "exec", f"flbed-{name}-server", "python3", "-c",
                                "import socket; print(socket.gethostbyname("
                                f"'flbed-{name}-client-2'))")
        assert reach.returncode == 0 and reach.stdout.strip(), reach.stderr
        qdiscs = json.loads(shaped_qdiscs(lab, "lab3", f"flbed-{name}-client-2"))
        assert any(q["kind"] in ("tbf", "htb") for q in qdiscs), qdiscs

        status = flbed("status", name, "-i", lab.inventory, "--json")
        assert status.returncode == 0, status.stderr[-2000:]
        hosts = json.loads(status.stdout)["hosts"]
        assert {p["state"] for h in hosts.values() for p in h["participants"]} == {"running"}

        again = flbed("provision", path, "-i", lab.inventory, "--json")
        assert again.returncode == 0, again.stderr[-3000:]
        again_report = json.loads(again.stdout)
        changed = {host: counts["changed"] for host, counts in again_report["hosts"].items()}
        assert set(changed.values()) == {0}, again_report["changed_tasks"]
    finally:
        down = flbed("teardown", name, "-i", lab.inventory)
    assert down.returncode == 0, down.stderr[-2000:]
    left = left_on(lab, name)
    assert clean(left), left


def test_run_across_hosts_trains_collects_and_cleans_up(lab, tmp_path):
    name = "lab-run"
    path = write_testbed(tmp_path, name)
    runs = tmp_path / "runs"
    try:
        done = flbed("run", path, "-i", lab.inventory, "--json", "--runs-root", str(runs))
    finally:
        flbed("teardown", name, "-i", lab.inventory, "-q")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "succeeded", summary
    assert summary["rounds_completed"] == 3
    by_name = {p["name"]: p for p in summary["participants"]}
    assert by_name["server"]["host"] == "lab1"
    assert {by_name["client-1"]["host"], by_name["client-2"]["host"]} == {"lab2", "lab3"}
    run_dir = summary["run_dir"]
    for participant in ("server", "client-1", "client-2"):
        assert os.path.exists(os.path.join(run_dir, "participants", participant,
                                           "container.log"))
    assert sorted(os.listdir(os.path.join(run_dir, "hosts"))) == [
        "lab1.json", "lab2.json", "lab3.json"]
    left = left_on(lab, name)
    assert clean(left), left


def server_round(lab, name):
    """The round the server on lab1 has begun (from 1), from its container's log; 0 before."""
    logs = lab.host_docker("lab1", "logs", f"flbed-{name}-server")
    rounds = [int(n) for n in re.findall(r"Round #(\d+)", logs.stdout + logs.stderr)]
    return max(rounds) + 1 if rounds else 0


def test_a_host_lost_mid_training_fails_the_run_naming_it(lab, tmp_path):
    """lab3's link is cut while the testbed trains: the run fails naming lab3, and the
    other hosts are torn down; once lab3 answers again, teardown cleans it too."""
    name = "lab-lost"
    path = write_testbed(tmp_path, name, rounds=200, fault_timeout="20s")
    out = open(tmp_path / "stdout.json", "w+", encoding="utf-8")
    err = open(tmp_path / "stderr.txt", "w+", encoding="utf-8")
    run = subprocess.Popen([sys.executable, "-m", "flbed", "run", path, "-i", lab.inventory,
                            "--json", "--runs-root", str(tmp_path / "runs")],
                           cwd=REPO, env=fs_env(), stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 1800
        while server_round(lab, name) < 3:
            if run.poll() is not None:
                err.seek(0)
                raise AssertionError("flbed run ended before round 3: " + err.read()[-3000:])
            assert time.monotonic() < deadline, "no round 3 within 30 min"
            time.sleep(1)
        cut_at = time.monotonic()
        lab.cut("lab3")
        returncode = run.wait(timeout=900)
        print(f"[lab] link of lab3 cut -> end of flbed run {time.monotonic() - cut_at:.1f} s")
        out.seek(0)
        err.seek(0)
        summary, stderr = json.loads(out.read()), err.read()
        assert returncode == 1, stderr[-3000:]
        assert summary["status"] == "failed"
        lost = [f for f in summary["failures"] if f.get("host") == "lab3"]
        assert lost and "stopped answering" in lost[0]["msg"], summary["failures"]
        assert "lab3 unreachable" in stderr

        left = left_on(lab, name)  # lab3 cannot be asked (docker exec is not its link)
        assert clean({host: left[host] for host in ("lab1", "lab2")}), left
        down = flbed("teardown", name, "-i", lab.inventory)
        assert down.returncode == 1
        assert "failed on lab3 (unreachable" in down.stderr, down.stderr[-2000:]
        assert "torn down on lab1, lab2" in down.stderr
    finally:
        if run.poll() is None:
            run.kill()
        lab.reconnect("lab3")
    assert flbed("teardown", name, "-i", lab.inventory).returncode == 0
    left = left_on(lab, name)
    assert clean(left), left
