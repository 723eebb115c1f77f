"""Fixtures shared by the link-shaping integration tests (import them from the test files).

They need root, the `ip`/`tc`/`nsenter` tools and, for containers, a running Docker engine.
Every object they create has a name starting with `flbedtest` and is removed on teardown.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "plugins", "module_utils"))

TEST_TESTBED = "flbedtest"
BUSYBOX_IMAGE = "flbedtest-busybox:latest"
BUSYBOX_BINARY = "/bin/busybox"  # Debian package busybox-static
BUSYBOX_APPLETS = ("sh", "sleep", "echo", "cat", "ip", "ifconfig")


def run(argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces and qdiscs")
    for tool in ("ip", "tc", "nsenter"):
        if shutil.which(tool) is None:
            pytest.skip("needs the %r tool (Debian package iproute2/util-linux)" % tool)


def require_docker():
    require_root()
    import flbed_docker
    try:
        flbed_docker.DockerAPI(timeout_s=5).get_json("/version")
    except flbed_docker.DockerError as exc:
        pytest.skip("needs a running Docker engine: %s" % exc)
    if shutil.which("docker") is None:
        pytest.skip("needs the docker command line client")


def _build_busybox_rootfs(tar_path):
    with tarfile.open(tar_path, "w") as tar:
        tar.add(BUSYBOX_BINARY, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo("bin/" + applet)
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory):
    """A one-binary image made locally: no registry is reachable from the test machines."""
    require_docker()
    if not os.path.exists(BUSYBOX_BINARY):
        pytest.skip("needs %s (apt-get install busybox-static)" % BUSYBOX_BINARY)
    if run(["docker", "image", "inspect", BUSYBOX_IMAGE], check=False).returncode != 0:
        tar_path = str(tmp_path_factory.mktemp("busybox") / "rootfs.tar")
        _build_busybox_rootfs(tar_path)
        run(["docker", "import", tar_path, BUSYBOX_IMAGE])
    return BUSYBOX_IMAGE


def start_container(name, image, extra_args=()):
    run(["docker", "rm", "-f", name], check=False)
    argv = ["docker", "run", "-d", "--name", name, "--label", "flbed.testbed=" + TEST_TESTBED]
    argv += list(extra_args) + [image, "sleep", "600"]
    run(argv)
    return name


def remove_container(name):
    run(["docker", "rm", "-f", name], check=False)


@pytest.fixture
def busybox_container(busybox_image, request):
    name = "flbedtest-%s" % request.node.name.replace("_", "-")[:40]
    start_container(name, busybox_image)
    yield name
    remove_container(name)


def container_pid(name):
    return int(run(["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout.strip())


def qdiscs_in_container(name, dev="eth0"):
    pid = container_pid(name)
    out = run(["nsenter", "-t", str(pid), "-n", "tc", "-j", "qdisc", "show", "dev", dev]).stdout
    return json.loads(out or "[]")
