"""Two testbeds on one host keep to themselves, and a testbed's network leads nowhere else.

Two testbeds are provisioned at the same time on this machine. The participants of one
reach each other; nothing of the other testbed, and no other container on the host,
reaches them; and they reach nothing outside their testbed: not another Docker network, not
a listener in a network namespace that stands for the LAN (routed from the host, as the
outside world is), not a listener on the host itself, at its address on the testbed's
network (the gateway) or at another of its addresses. A container on an ordinary Docker
network reaches those listeners, so they are there to be reached. Tearing one testbed down
leaves the other running and shaped as it was.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, STANDIN, docker_ready, flbed, labelled, netns_qdiscs, \
    write_testbed

pytestmark = pytest.mark.integration

if not docker_ready():
    pytest.skip("needs a running Docker engine (make test starts one)", allow_module_level=True)

FIRST, SECOND = "rel-iso-a", "rel-iso-b"
PROBE_PORT = 7901
OUTSIDE_NS, OUTSIDE_HOST_ADDR, OUTSIDE_ADDR = "rel-outside", "10.231.7.1", "10.231.7.2"
LISTEN = ("import socket, time\n"
          "server = socket.socket()\n"
          "server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"server.bind(('0.0.0.0', {PROBE_PORT}))\n"
          "server.listen(16)\n"
          "deadline = time.monotonic() + 600\n"
          "server.settimeout(1)\n"
          "while time.monotonic() < deadline:\n"
          "    try:\n"
          "        server.accept()[0].close()\n"
          "    except OSError:\n"
          "        pass\n")
CONNECT = ("import socket, sys\n"
           "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4).close()\n")


def container(testbed, participant):
    return f"flbed-{testbed}-{participant}"


def address_of(name):
    inspected = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True,
                                          text=True, check=True).stdout)[0]
    networks = inspected["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["IPAddress"]


def listen_in(name):
    """A TCP listener on PROBE_PORT in a container: the participant's own Python, as its
    user, since its root filesystem is read-only and it may have no shell tools."""
    subprocess.run(["docker", "exec", "-d", name, "python3", "-c", LISTEN], check=True)


def reaches(name, address, port=PROBE_PORT):
    """Whether a TCP connection from the container NAME to ADDRESS:PORT is accepted."""
    done = subprocess.run(["docker", "exec", name, "python3", "-c", CONNECT, address,
                           str(port)], capture_output=True, text=True, timeout=60)
    return done.returncode == 0


def wait_reaches(name, address, tries=20):
    """True once NAME reaches ADDRESS (a listener just started needs a moment)."""
    return any(reaches(name, address) for _ in range(tries))


def run(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def gateway_of(name):
    inspected = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True,
                                          text=True, check=True).stdout)[0]
    return next(iter(inspected["NetworkSettings"]["Networks"].values()))["Gateway"]


@pytest.fixture
def outside():
    """A network namespace standing for the LAN beyond the host, routed from the host over a
    veth pair (the host's end has OUTSIDE_HOST_ADDR), with a listener on PROBE_PORT; and a
    listener on the host itself, on all its addresses."""
    subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True)
    run("ip", "netns", "add", OUTSIDE_NS)
    listeners = []
    try:
        run("ip", "link", "add", "rel-out-h", "type", "veth", "peer", "name", "rel-out-n")
        run("ip", "link", "set", "rel-out-n", "netns", OUTSIDE_NS)
        run("ip", "addr", "add", f"{OUTSIDE_HOST_ADDR}/30", "dev", "rel-out-h")
        run("ip", "link", "set", "rel-out-h", "up")
        for argv in (["ip", "addr", "add", f"{OUTSIDE_ADDR}/30", "dev", "rel-out-n"],
                     ["ip", "link", "set", "rel-out-n", "up"], ["ip", "link", "set", "lo", "up"]):
            run("ip", "netns", "exec", OUTSIDE_NS, *argv)
        listeners.append(subprocess.Popen(["ip", "netns", "exec", OUTSIDE_NS, sys.executable,
                                           "-c", LISTEN]))
        listeners.append(subprocess.Popen([sys.executable, "-c", LISTEN]))
        yield OUTSIDE_ADDR
    finally:
        for listener in listeners:
            listener.kill()
            listener.wait()
        subprocess.run(["ip", "link", "del", "rel-out-h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True)


@pytest.fixture
def plain_container():
    """A container on an ordinary (not internal) Docker network of this test, made from the
    participant image, which has Python."""
    network, name = "rel-iso-plain", "rel-iso-plain-probe"
    image = json.loads(subprocess.run(["docker", "inspect", container(FIRST, "server")],
                                      capture_output=True, text=True,
                                      check=True).stdout)[0]["Config"]["Image"]
    run("docker", "network", "create", network)
    try:
        run("docker", "run", "-d", "--name", name, "--network", network, "--user", "10001",
            "--entrypoint", "python3", image, "-c", "import time; time.sleep(900)")
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)


@pytest.fixture
def two_testbeds(tmp_path, teardown_after):
    """FIRST and SECOND, provisioned at the same time."""
    for name in (FIRST, SECOND):
        teardown_after(name)
    env = dict(os.environ, FLBED_FS_SOURCE=STANDIN)
    provisions = [subprocess.Popen(
        [sys.executable, "-m", "flbed", "provision", write_testbed(tmp_path, name), "-q"],
        cwd=REPO, env=env, stderr=subprocess.PIPE,
        text=True) for name in (FIRST, SECOND)]
    for provision in provisions:
        _, stderr = provision.communicate(timeout=1800)
        assert provision.returncode == 0, stderr[-3000:]
    return FIRST, SECOND


def test_a_testbed_network_carries_only_its_own_traffic(two_testbeds, outside,
                                                        plain_container):
    server, client = container(FIRST, "server"), container(FIRST, "client-1")
    listen_in(server)
    listen_in(plain_container)
    host_on_testbed = gateway_of(client)

    assert wait_reaches(client, server), "participants of one testbed must reach each other"
    assert wait_reaches(plain_container, outside), "the outside listener must be reachable"
    assert wait_reaches(plain_container, OUTSIDE_HOST_ADDR), "the host's must be reachable"
    assert wait_reaches(plain_container, gateway_of(plain_container))

    assert not reaches(client, outside), "a participant reached the LAN"
    assert not reaches(client, OUTSIDE_HOST_ADDR), "a participant reached the host"
    assert not reaches(client, host_on_testbed), "a participant reached the host's gateway"
    assert not reaches(client, address_of(plain_container)), "it reached another network"
    assert not reaches(container(SECOND, "client-1"), address_of(server))
    assert not reaches(plain_container, address_of(server))


def test_tearing_one_testbed_down_leaves_the_other_running_and_shaped(two_testbeds):
    kept = {name: netns_qdiscs(name) for name in labelled_names(FIRST)}
    assert all(kept.values()), kept

    done = flbed("teardown", SECOND)
    assert done.returncode == 0, done.stderr[-3000:]

    assert labelled("container", SECOND) == [] and labelled("network", SECOND) == []
    assert {name: netns_qdiscs(name) for name in labelled_names(FIRST)} == kept
    assert set(kept) == {container(FIRST, p) for p in ("server", "client-1", "client-2")}
    assert len(labelled("network", FIRST)) == 1
    states = subprocess.run(["docker", "inspect", "-f", "{{.State.Status}}", *kept],
                            capture_output=True, text=True, check=True).stdout.split()
    assert states == ["running"] * len(kept)


def labelled_names(testbed):
    listing = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}", "--filter",
                              f"label=flbed.testbed={testbed}"],
                             capture_output=True, text=True, check=True)
    return sorted(listing.stdout.split())
