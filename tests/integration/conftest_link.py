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
import time

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "plugins", "module_utils"))

TEST_TESTBED = "flbedtest"
BUSYBOX_IMAGE = "flbedtest-busybox:latest"
BUSYBOX_BINARY = "/bin/busybox"  # Debian package busybox-static
BUSYBOX_APPLETS = ("sh", "sleep", "echo", "cat", "ip", "ifconfig", "tc")


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
    # Rebuilt every session (about a second) so the image always has today's applets.
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


# ------------------------------------------------------------------ network namespaces

def netem_missing_reason():
    """Why this kernel cannot run netem, or None when it can (tried in a throwaway netns)."""
    probe = run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                 "delay", "1ms"], check=False)
    if probe.returncode == 0:
        return None
    return "this kernel has no netem qdisc (sch_netem): " + probe.stderr.strip()


class NetnsPair:
    """Two namespaces joined by a veth, each end called eth0: `a` plays the participant."""

    def __init__(self, tag):
        self.a, self.b = "flbedtest-%s-a" % tag, "flbedtest-%s-b" % tag
        self.ip_a, self.ip_b = "10.199.7.1", "10.199.7.2"

    def create(self):
        self.delete()
        run(["ip", "netns", "add", self.a])
        run(["ip", "netns", "add", self.b])
        run(["ip", "-n", self.a, "link", "add", "eth0", "type", "veth", "peer", "name",
             "eth0", "netns", self.b])
        for ns, addr in ((self.a, self.ip_a), (self.b, self.ip_b)):
            run(["ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        return self

    def delete(self):
        for ns in (self.a, self.b):
            run(["ip", "netns", "del", ns], check=False)

    def tc_json(self, *args):
        out = run(["ip", "netns", "exec", self.a, "tc", "-j"] + list(args)).stdout
        return json.loads(out or "[]")

    def link_names(self):
        out = run(["ip", "-n", self.a, "-j", "link", "show"]).stdout
        return [link["ifname"] for link in json.loads(out)]


@pytest.fixture
def netns_pair(request):
    require_root()
    pair = NetnsPair(str(abs(hash(request.node.name)) % 10000))
    pair.create()
    yield pair
    pair.delete()


# ------------------------------------------------------------------ running the module

def ansible_bin(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else shutil.which(name)


def run_flbed_link(tmp_path, args, check=False, diff=True, module="flbed_link"):
    """Run flbed_link (or another of flbed's modules) once through ansible-playbook; return
    the task's result dict."""
    playbook = tmp_path / "flbed_link.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Run the module", module: args, "ignore_errors": True}],
    }]))
    if ansible_bin("ansible-playbook") is None:
        pytest.skip("needs ansible-playbook beside this Python or on PATH")
    argv = [ansible_bin("ansible-playbook"), "-i", "localhost,", str(playbook)]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON: %s %s"
                             % (proc.stdout[-2000:], proc.stderr[-2000:]))
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


# ------------------------------------------------------------------ measuring

def iperf3_mbit(client_ns, server_ns, server_ip, reverse=False, seconds=4, omit=1):
    """TCP goodput in Mbit/s seen by the receiving side (the server, or the client with -R)."""
    if shutil.which("iperf3") is None:
        pytest.skip("needs iperf3 (apt-get install -y iperf3)")
    port = "5399"
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-J",
                               "-p", port], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        argv = ["ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-p", port, "-J",
                "-t", str(seconds), "-O", str(omit), "--get-server-output"]
        for _attempt in range(30):
            proc = run(argv + (["-R"] if reverse else []), check=False)
            report = json.loads(proc.stdout or "{}")
            if proc.returncode == 0 and "error" not in report:
                break
            time.sleep(0.1)   # the server may not listen yet
        else:
            raise AssertionError("iperf3 failed: %s %s" % (report.get("error"), proc.stderr))
    finally:
        server.kill()
        server.wait()
    receiver = report if reverse else report["server_output_json"]
    # The median second, not the run's mean: after an early loss TCP hands over held-back
    # bytes in one burst, which lifts a short run's mean above the shaped rate.
    seconds_mbit = sorted(interval["sum"]["bits_per_second"] / 1e6
                          for interval in receiver.get("intervals", [])
                          if not interval["sum"].get("omitted"))
    if not seconds_mbit:
        return receiver["end"]["sum_received"]["bits_per_second"] / 1e6
    return seconds_mbit[len(seconds_mbit) // 2]
