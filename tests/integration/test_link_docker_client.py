"""The standard-library Docker client against the real engine."""

import pytest

from .conftest_link import TEST_TESTBED, busybox_container, busybox_image  # noqa: F401

import flbed_docker

pytestmark = pytest.mark.integration


def test_inspect_list_and_logs_of_a_real_container(busybox_container):
    api = flbed_docker.DockerAPI()
    info = api.inspect_container(busybox_container)
    assert info["Name"] == "/" + busybox_container
    assert info["State"]["Pid"] > 0

    listed = api.list_containers(labels={"flbed.testbed": TEST_TESTBED})
    assert "/" + busybox_container in [n for c in listed for n in c["Names"]]
    assert api.list_containers(labels={"flbed.testbed": "flbedtest-no-such-testbed"}) == []
    assert api.inspect_container("flbedtest-no-such-container") is None


def test_logs_are_demultiplexed(busybox_image):
    import subprocess
    name = "flbedtest-logs"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(["docker", "run", "--name", name, busybox_image, "sh", "-c",
                    "echo to-stdout; echo to-stderr >&2"], check=True, capture_output=True)
    try:
        logs = flbed_docker.DockerAPI().container_logs(name)
        assert sorted(logs.splitlines()) == ["to-stderr", "to-stdout"]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
