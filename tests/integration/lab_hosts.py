"""An emulated lab: Docker hosts that are containers on this machine, reached over SSH.

Each lab host is a container running an SSH server, with Debian's docker.io installed but
no engine started: flbed's docker_host role starts it over SSH, as on a fresh lab machine.
The hosts share a Docker network the lab creates; Ansible reaches them at their addresses
there with a key made for the lab. Everything is named ``flbedtest-lab-*`` and removed by
``close()``. The host image is made once from Debian packages with mmdebstrap and kept.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

import yaml

HOST_PACKAGES = ["docker.io", "openssh-server", "python3", "python3-requests", "iproute2",
                 "iptables", "util-linux", "kmod", "mmdebstrap", "ca-certificates", "procps"]
IMAGE_REPOSITORY = "flbedtest-labhost"
# docker run --privileged fails on these machines (CAP_SYS_RESOURCE is withheld); this set
# is what a nested Docker engine needs instead.
NESTED_ENGINE_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--device-cgroup-rule", "a *:* rwm", "--cgroupns", "host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
]
SSH_OPTIONS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
               "-o LogLevel=ERROR -o ConnectTimeout=10")


def docker(*args, check=True, **kwargs):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          **kwargs)


def host_image():
    """The lab host image, made with mmdebstrap when it is not there yet."""
    tag = hashlib.sha256(" ".join(sorted(HOST_PACKAGES)).encode()).hexdigest()[:12]
    ref = f"{IMAGE_REPOSITORY}:{tag}"
    if docker("image", "inspect", ref, check=False).returncode == 0:
        return ref
    with tempfile.TemporaryDirectory(prefix="flbedtest-labhost-") as scratch:
        rootfs = os.path.join(scratch, "rootfs.tar")
        subprocess.run(["mmdebstrap", "--variant=minbase", "--format=tar",
                        "--include=" + ",".join(HOST_PACKAGES), "bookworm", rootfs],
                       check=True, capture_output=True)
        docker("import", rootfs, ref)
    return ref


class Lab:
    """Start with ``Lab(workdir, names).start()``; always ``close()``."""

    def __init__(self, workdir, names, prefix=None):
        self.workdir = str(workdir)
        self.names = list(names)
        self.prefix = prefix or f"flbedtest-lab-{os.getpid()}"
        self.network = self.prefix
        self.key = os.path.join(self.workdir, "lab_key")
        self.inventory = os.path.join(self.workdir, "lab_inventory.yml")
        self.addresses = {}

    def container(self, name):
        return f"{self.prefix}-{name}"

    def start(self, groups=None):
        image = host_image()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key],
                       check=True, capture_output=True)
        docker("network", "create", "--label", "flbedtest.lab=1", self.network)
        for name in self.names:
            self._start_host(image, name)
        self._write_inventory(groups or {})
        self._wait_for_ssh()
        return self

    def _start_host(self, image, name):
        container = self.container(name)
        engine_dir = os.path.join(self.workdir, "engines", name)
        os.makedirs(engine_dir)
        docker("run", "-d", "--name", container, "--hostname", name,
               "--network", self.network, "--label", "flbedtest.lab=1",
               *NESTED_ENGINE_FLAGS, "-v", f"{engine_dir}:/var/lib/docker", image,
               "sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e")
        # The nested engine puts its containers' cgroups under their own parent, so they
        # never sit beside this machine's containers and are easy to find afterwards.
        daemon = {"cgroup-parent": f"/{container}"}
        setup = (f"mkdir -p /root/.ssh /etc/docker && chmod 700 /root/.ssh && "
                 f"echo '{json.dumps(daemon)}' > /etc/docker/daemon.json")
        docker("exec", container, "sh", "-c", setup)
        docker("cp", self.key + ".pub", f"{container}:/root/.ssh/authorized_keys")
        docker("exec", container, "chown", "root:root", "/root/.ssh/authorized_keys")
        inspected = json.loads(docker("inspect", container).stdout)[0]
        networks = inspected["NetworkSettings"]["Networks"]
        self.addresses[name] = networks[self.network]["IPAddress"]

    def _write_inventory(self, groups):
        hosts = {name: {"ansible_host": self.addresses[name]} for name in self.names}
        inventory = {"all": {
            "vars": {"ansible_user": "root", "ansible_ssh_private_key_file": self.key,
                     "ansible_ssh_common_args": SSH_OPTIONS,
                     "ansible_python_interpreter": "/usr/bin/python3"},
            "hosts": hosts,
            "children": {group: {"hosts": {member: {} for member in members}}
                         for group, members in groups.items()},
        }}
        with open(self.inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump(inventory, handle)

    def ssh(self, name, command, check=False, timeout=60):
        argv = ["ssh", "-i", self.key, *SSH_OPTIONS.split(), f"root@{self.addresses[name]}",
                command]
        return subprocess.run(argv, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def _wait_for_ssh(self, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        for name in self.names:
            while self.ssh(name, "true", timeout=15).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"lab host {name} does not answer SSH")
                time.sleep(1)

    def cut(self, name):
        """Drop every packet on the host's link, inside its own network namespace: a lab
        machine whose cable was pulled. SSH, swarm and overlay traffic all stop."""
        for rule in self._link_rules():
            docker("exec", self.container(name), "iptables", "-I", *rule)

    def reconnect(self, name):
        for rule in self._link_rules():
            docker("exec", self.container(name), "iptables", "-D", *rule, check=False)

    @staticmethod
    def _link_rules():
        return [("INPUT", "-i", "eth0", "-j", "DROP"), ("OUTPUT", "-o", "eth0", "-j", "DROP"),
                ("FORWARD", "-i", "eth0", "-j", "DROP"), ("FORWARD", "-o", "eth0", "-j", "DROP")]

    def host_docker(self, name, *args):
        """docker inside a lab host, e.g. ('ps', '-aq')."""
        return docker("exec", self.container(name), "docker", *args, check=False)

    def close(self):
        for name in self.names:
            docker("rm", "-f", "-v", self.container(name), check=False)
        docker("network", "rm", self.network, check=False)
        for name in self.names:
            for root in ("/sys/fs/cgroup", *self._cgroup_roots()):
                path = os.path.join(root, self.container(name))
                if os.path.isdir(path):
                    for sub, _, _ in sorted(os.walk(path), reverse=True):
                        try:
                            os.rmdir(sub)
                        except OSError:
                            pass
        shutil.rmtree(os.path.join(self.workdir, "engines"), ignore_errors=True)

    @staticmethod
    def _cgroup_roots():
        base = "/sys/fs/cgroup"
        return [os.path.join(base, entry) for entry in os.listdir(base)
                if os.path.isdir(os.path.join(base, entry))]
