"""What the planner needs to know about an Ansible inventory: hosts, groups, sizes.

The inventory is read with ``ansible-inventory --list``, so every inventory format Ansible
accepts works here too. Inside a playbook the planner plugin builds the same ``Inventory``
from Ansible's own variables instead.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

from .errors import InputError

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass
class Inventory:
    hosts: dict                                  # host name -> its variables
    groups: dict = field(default_factory=dict)   # group name -> host names, in inventory order

    def members(self, name):
        """The hosts a placement names: a host itself, or every host of a group."""
        if name in self.hosts:
            return [name]
        return list(self.groups.get(name, []))

    def host_cpus(self, host):
        """The host's core count: gathered facts, the inventory's word, or this machine's."""
        hostvars = self.hosts.get(host, {})
        for key in ("flbed_host_cpus", "ansible_processor_nproc", "ansible_processor_vcpus"):
            if hostvars.get(key):
                return int(hostvars[key])
        if is_local(host, hostvars):
            return os.cpu_count()
        return None

    def native_compute(self, host):
        """The host is the device itself (a real Raspberry Pi): its participants compute at
        its own speed, with no CPU quota."""
        value = self.hosts.get(host, {}).get("flbed_native_compute", False)
        return value is True or str(value).lower() in ("true", "yes", "1")

    def host_memory_bytes(self, host):
        hostvars = self.hosts.get(host, {})
        if hostvars.get("ansible_memtotal_mb"):
            return int(hostvars["ansible_memtotal_mb"]) * 2**20
        if is_local(host, hostvars):
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return None


def is_local(host, hostvars):
    return hostvars.get("ansible_connection") == "local" or host in LOCAL_NAMES


def load_inventory(path):
    """Run ``ansible-inventory`` on PATH; InputError when it is missing or unreadable."""
    if not os.path.exists(path):
        raise InputError(f"inventory {path!r} does not exist; give -i with an inventory file "
                         "or directory, e.g. inventories/local")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-inventory"),
               "-i", path, "--list"]
    if not os.path.exists(command[0]):
        command[0] = "ansible-inventory"
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"inventory {path!r} cannot be read by ansible-inventory: {reason}")
    return from_inventory_json(json.loads(done.stdout))


def from_inventory_json(listing):
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    groups = {}

    def walk(group):
        entry = listing.get(group, {})
        hosts = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            hosts += [host for host in walk(child) if host not in hosts]
        groups[group] = hosts
        return hosts

    walk("all")
    hosts = {host: hostvars.get(host, {}) for host in groups["all"]}
    return Inventory(hosts, groups)
