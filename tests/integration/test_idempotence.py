"""Provisioning is idempotent, and `--check` predicts without touching anything.

One small stand-in testbed (a server and one client) is provisioned once for the module.
Then, in the order of community.docker's four-step check: provisioning the same file again
reports no change on any host; `--check` of a changed file (a second client, a slower upload
for the clients) reports the steps that would change and leaves containers, networks, tc
qdiscs and the host directory exactly as they were; provisioning the changed file applies
it, and provisioning it again (and checking it again) reports no change.
"""

import json
import os

import pytest

from tests.conftest import WORKDIR_ROOT, docker_ready, flbed, labelled, netns_qdiscs, \
    save_testbed, standin_testbed

pytestmark = pytest.mark.integration

if not docker_ready():
    pytest.skip("needs a running Docker engine (make test starts one)", allow_module_level=True)

NAME = "idem-provision"
SLOWER_UP = "2mbit"  # 250000 bytes/s
MEASUREMENT_FILES = ("memory.json", "progress.json")


def provision(path, fs_source, *extra):
    done = flbed("provision", path, "--json", *extra, fs_source=fs_source)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def changes(report):
    """{host: changed count}, and the names of the tasks that changed, for messages."""
    counts = {host: c["changed"] for host, c in report["hosts"].items()}
    assert report["hosts"] and all(c["failed"] == 0 for c in report["hosts"].values())
    return counts, report["changed_tasks"]


def host_state(name):
    """Everything a provisioning run could change on this host, for one testbed."""
    containers = {}
    for container in labelled("container", name):
        inspected = json.loads(os.popen(f"docker inspect {container}").read())[0]
        containers[inspected["Name"]] = {
            "id": inspected["Id"], "started": inspected["State"]["StartedAt"],
            "status": inspected["State"]["Status"],
            "nano_cpus": inspected["HostConfig"]["NanoCpus"],
            "qdiscs": netns_qdiscs(inspected["Id"])}
    files = {}
    for folder, _, names in os.walk(os.path.join(WORKDIR_ROOT, name)):
        # The watch's readings of running containers (memory peaks) are measurements that
        # every look renews, not provisioned state.
        names = [n for n in names if n not in MEASUREMENT_FILES]
        for entry in [folder] + [os.path.join(folder, n) for n in names]:
            seen = os.lstat(entry)
            files[entry] = (seen.st_mode, seen.st_uid, seen.st_size, seen.st_mtime_ns)
    return {"containers": containers, "networks": sorted(labelled("network", name)),
            "files": files}


def changed_testbed():
    testbed = standin_testbed(NAME, clients=2)
    testbed["profiles"]["slow_device"] = {"extends": "small_device",
                                          "link": {"up": SLOWER_UP}}
    testbed["clients"][0]["profile"] = "slow_device"
    return testbed


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory, frozen_standin):
    folder = tmp_path_factory.mktemp("idem")
    path = save_testbed(folder, standin_testbed(NAME, clients=1))
    try:
        first = provision(path, frozen_standin)
        assert sum(changes(first)[0].values()) > 0  # it made the testbed
        (folder / "changed").mkdir()
        yield {"path": path, "changed_path": save_testbed(folder / "changed", changed_testbed()),
               "fs_source": frozen_standin}
    finally:
        flbed("teardown", NAME, "-q")


def test_provisioning_an_unchanged_testbed_again_changes_nothing(provisioned):
    before = host_state(NAME)
    counts, tasks = changes(provision(provisioned["path"], provisioned["fs_source"]))
    assert set(counts.values()) == {0}, f"changed on the second run: {tasks}"
    assert host_state(NAME) == before


def test_check_of_an_unchanged_testbed_predicts_no_change(provisioned):
    report = provision(provisioned["path"], provisioned["fs_source"], "--check")
    counts, tasks = changes(report)
    assert report["check"] is True
    assert set(counts.values()) == {0}, f"check predicts changes: {tasks}"


def test_check_of_a_changed_testbed_reports_and_changes_nothing(provisioned):
    before = host_state(NAME)
    assert len(before["containers"]) == 2 and len(before["networks"]) == 1

    report = provision(provisioned["changed_path"], provisioned["fs_source"], "--check")
    counts, tasks = changes(report)
    assert counts["localhost"] > 0
    assert "Start each participant's container, limited like its device" in tasks["localhost"]
    assert "Shape the links of this host's participants" in tasks["localhost"]
    assert host_state(NAME) == before
    assert f"/flbed-{NAME}-client-2" not in before["containers"]


def test_the_changed_testbed_applies_once_then_changes_nothing(provisioned):
    applied = provision(provisioned["changed_path"], provisioned["fs_source"])
    assert changes(applied)[0]["localhost"] > 0
    state = host_state(NAME)
    assert sorted(state["containers"]) == [f"/flbed-{NAME}-client-1", f"/flbed-{NAME}-client-2",
                                           f"/flbed-{NAME}-server"]
    for client in ("client-1", "client-2"):  # tc -j gives rates in bytes per second
        assert ("eth0", "tbf", 250_000) in state["containers"][f"/flbed-{NAME}-{client}"]["qdiscs"]

    counts, tasks = changes(provision(provisioned["changed_path"], provisioned["fs_source"]))
    assert set(counts.values()) == {0}, f"changed on the second run: {tasks}"
    assert host_state(NAME) == state
    counts, tasks = changes(provision(provisioned["changed_path"], provisioned["fs_source"],
                                      "--check"))
    assert set(counts.values()) == {0}, f"check predicts changes: {tasks}"
