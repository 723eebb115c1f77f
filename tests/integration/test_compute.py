"""Compute emulation on the real Docker engine: waiting costs no CPU, quotas bind only once a
participant listens, and a participant killed for memory is reported with its numbers.

Tests marked ``framework`` need the real FederatedScope (FLBED_FS_SOURCE): only it waits in a
busy loop. The others use the stand-in under tests/fs_standin.
"""

import datetime
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time

import pytest
import yaml

from tests.conftest import REPO, flbed

HOST_WORKDIR = "/var/lib/flbed"
MIB = 2**20
pytestmark = pytest.mark.integration

if not (shutil.which("docker") and subprocess.run(
        ["docker", "info"], capture_output=True, check=False).returncode == 0):
    pytest.skip("needs a running Docker engine (make test starts one)", allow_module_level=True)

needs_framework = pytest.mark.skipif(
    not os.environ.get("FLBED_FS_SOURCE"),
    reason="needs the real FederatedScope: set FLBED_FS_SOURCE to a checkout")


def load_cgroup_reader():
    path = REPO / "plugins" / "module_utils" / "flbed_cgroup.py"
    spec = importlib.util.spec_from_file_location("flbed_cgroup_for_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_testbed(tmp_path, name, *, fs=None, clients=None, rounds=3, memory="512m"):
    testbed = {
        "name": name,
        "timeout": "5m",
        "federatedscope": dict({"config": {"data": {"type": "toy"}, "model": {"type": "lr"},
                                           "federate": {"total_round_num": rounds}}},
                               **(fs or {})),
        "profiles": {"small_device": {"extends": "raspberry_pi", "memory": memory,
                                      "cpus": 0.5}},
        "server": {"profile": "small_device"},
        "clients": clients or [{"profile": "small_device", "count": 2,
                                "env": {"FLBED_STANDIN_ROUND_S": "0.5"}}],
        "shaping": {"allow_missing": ["delay", "jitter", "loss"]},
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(testbed))
    return str(path)


def inspect(container):
    done = subprocess.run(["docker", "inspect", container], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)[0]


def cpu_share_of_a_core(container, seconds=4.0):
    """The container's CPU use over `seconds`, as a fraction of one core, from its cgroup."""
    cgroups = load_cgroup_reader().ContainerCgroups(inspect(container)["State"]["Pid"])
    before_ns, started = cgroups.cpu_usage_ns(), time.monotonic()
    time.sleep(seconds)
    used_ns = cgroups.cpu_usage_ns() - before_ns
    return used_ns / 1e9 / (time.monotonic() - started)


def launch_server(name, timeout_s=120):
    control = os.path.join(HOST_WORKDIR, name, "server", "control")
    with open(os.path.join(control, "start"), "w", encoding="utf-8") as handle:
        handle.write("launch\n")
    give_up = time.monotonic() + timeout_s
    while not os.path.exists(os.path.join(control, "ready")):
        assert time.monotonic() < give_up, f"the server of {name} did not listen"
        time.sleep(0.2)


def log_time(line):
    """The UTC time of a FederatedScope log line ("2026-12-03 16:59:37,242 (server:843) ...")."""
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


@pytest.fixture
def teardown_after():
    names = []
    yield names.append
    for name in names:
        flbed("teardown", name, "-q")


@pytest.mark.framework
@needs_framework
@pytest.mark.parametrize("wait, low, high", [("blocking", 0.0, 0.01), ("spinning", 0.3, 2.0)])
def test_a_waiting_server_uses_cpu_only_when_spinning(tmp_path, teardown_after, wait, low,
                                                      high):
    name = f"it-wait-{wait}"
    teardown_after(name)
    path = write_testbed(tmp_path, name, fs={"wait": wait},
                         clients=[{"profile": "iot_minimal"}])
    done = flbed("provision", path, fs_source=os.environ["FLBED_FS_SOURCE"])
    assert done.returncode == 0, done.stderr
    # The image holds more than 256m * 1/1.25 once loaded: the plan warns about iot_minimal.
    assert re.search(r"warning: client-1 \(iot_minimal\) may run out of memory: its limit is "
                     r"256\.0 MiB", done.stderr), done.stderr

    launch_server(name)
    time.sleep(2)  # let start-up settle; the server now waits for its client's join request
    share = cpu_share_of_a_core(f"flbed-{name}-server")
    assert low <= share < high, f"{wait}: {share:.2%} of a core"
    record = json.load(open(os.path.join(HOST_WORKDIR, name, "server", "control",
                                         "emulation.json")))
    assert record["fs_wait"] == wait
    assert record.get("busy_wait_replaced", False) is (wait == "blocking")


def test_quota_binds_once_a_participant_listens_and_before_round_0(tmp_path, teardown_after):
    name = "it-quota"
    teardown_after(name)
    path = write_testbed(tmp_path, name)
    done = flbed("provision", path)
    assert done.returncode == 0, done.stderr
    for participant in ("server", "client-1", "client-2"):
        assert inspect(f"flbed-{name}-{participant}")["HostConfig"]["NanoCpus"] == 0

    done = flbed("run", path, "--json", "--keep", "--runs-root", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    emulation = summary["emulation"]
    assert emulation["fs_wait"] == "blocking" and emulation["cpu_policy"] == "after_ready"
    quotas = emulation["cpu_quotas"]
    assert sorted(quotas) == ["client-1", "client-2", "server"]
    for participant in quotas:
        assert quotas[participant]["cpus"] == 0.5
        assert inspect(f"flbed-{name}-{participant}")["HostConfig"]["NanoCpus"] == 500_000_000

    server_log = next((tmp_path / "runs").glob(
        f"{name}/*/participants/server/out/*/exp_print.log")).read_text()
    (round_0,) = [line for line in server_log.splitlines() if "(Round #0)" in line]
    assert log_time(round_0) > max(q["applied_at"] for q in quotas.values())


def test_quota_from_the_start_when_the_testbed_asks(tmp_path, teardown_after):
    name = "it-quota-start"
    teardown_after(name)
    path = write_testbed(tmp_path, name, fs={"throttle_from_start": True})
    done = flbed("provision", path)
    assert done.returncode == 0, done.stderr
    assert inspect(f"flbed-{name}-client-1")["HostConfig"]["NanoCpus"] == 500_000_000


def test_a_client_killed_for_memory_is_reported_with_its_limit_and_peak(tmp_path,
                                                                         teardown_after):
    name = "it-oom"
    teardown_after(name)
    clients = [{"profile": "small_device", "env": {"FLBED_STANDIN_ROUND_S": "0.5"}},
               {"profile": "tiny_device", "env": {"FLBED_STANDIN_ALLOCATE_MB": "200"}}]
    path = write_testbed(tmp_path, name, clients=clients, rounds=20)
    testbed = yaml.safe_load(open(path))
    testbed["profiles"]["tiny_device"] = {"extends": "small_device", "memory": "64m"}
    open(path, "w").write(yaml.safe_dump(testbed))

    done = flbed("run", path, "--json", "--runs-root", str(tmp_path / "runs"))
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    (failure,) = summary["failures"]
    assert failure["name"] == "client-2" and failure["oom_killed"] is True
    assert "killed by the out-of-memory killer at its memory limit of 64.0 MiB" in \
        failure["reason"]
    entry = next(p for p in summary["participants"] if p["name"] == "client-2")
    assert entry["memory_limit_bytes"] == 64 * MIB
    assert 20 * MIB < entry["memory_peak_bytes"] <= 64 * MIB
