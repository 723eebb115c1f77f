"""Turn a testbed and an inventory into the plan that the playbooks carry out.

The plan is plain data (JSON-ready): every participant with its host, container, limits in
bytes and cores, link in bit/s, milliseconds and percent, and its FederatedScope config. It
is the only thing roles read, whether the wrapper or ``ansible-playbook`` started them: both
reach this module, so there is one planner.
"""

import datetime
import os

from . import fsconfig
from .errors import InputError

DEFAULT_GROUP = "flbed_default"
HOST_WORKDIR = "/var/lib/flbed"  # also flbed_workdir_root in playbooks/group_vars/all.yml
LABEL = "flbed.testbed"
# The testbed's word for a link setting, and the shaping module's parameter for it.
SHAPING_PARAMETERS = {"delay": "delay_ms", "jitter": "jitter_ms", "loss": "loss_pct"}
# When a participant's CPU quota binds: once it listens (start-up runs at the host's speed,
# no round before the quota), or from the container's creation.
CPU_AFTER_READY, CPU_FROM_START = "after_ready", "from_start"


def container_name(testbed, participant):
    return f"flbed-{testbed}-{participant}"


def new_run_id(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def make_plan(testbed, inventory, *, run_id=None, runs_root="runs",
              workdir_root=HOST_WORKDIR):
    """The plan as a dict; InputError when the inventory cannot carry the testbed."""
    problems = fsconfig.owned_key_problems(testbed.fs_config)
    placements = _place(testbed, inventory, problems)
    if problems:
        raise InputError(problems)

    run_id = run_id or new_run_id()
    server_container = container_name(testbed.name, "server")
    participants = []
    for (name, role, index, group, path, host) in placements:
        profile = testbed.profiles[group.profile]
        container = container_name(testbed.name, name)
        config = fsconfig.render(
            testbed.fs_config, role=role, data_idx=index, client_num=testbed.client_count,
            server_host=server_container, own_host=container)
        participants.append({
            "name": name, "role": role, "index": index, "host": host, "field": path,
            "profile": profile.name, "container": container,
            "cpus": profile.cpus, "memory_bytes": profile.memory_bytes,
            "link": profile.link.as_dict(), "port": fsconfig.GRPC_PORT,
            "listen": f"{container}:{fsconfig.GRPC_PORT}", "env": group.env,
            "fs_config": config,
        })

    warnings = _capacity_problems(participants, inventory, problems)
    if problems:
        raise InputError(problems)
    return {
        "testbed": testbed.name,
        "description": testbed.description,
        "testbed_file": testbed.path,
        "run_id": run_id,
        "run_dir": os.path.abspath(os.path.join(runs_root, testbed.name, run_id)),
        "label": {LABEL: testbed.name},
        "network": f"flbed-{testbed.name}",
        "host_workdir": f"{workdir_root}/{testbed.name}",
        "timeout_s": testbed.timeout_s,
        "total_rounds": fsconfig.total_rounds(testbed.fs_config),
        "fs_source": testbed.fs_source,
        "image": testbed.image,
        "allow_missing": [SHAPING_PARAMETERS[setting] for setting in testbed.allow_missing],
        "verify_links": testbed.verify_links,
        "fs_wait": testbed.fs_wait,
        "cpu_policy": CPU_FROM_START if testbed.throttle_from_start else CPU_AFTER_READY,
        "hosts": sorted({p["host"] for p in participants}),
        "participants": participants,
        "warnings": warnings,
    }


def _place(testbed, inventory, problems):
    """(name, role, data_idx, placement, field path, host) for the server, then each client."""
    rotation = {}

    def pick(placement, path):
        target = placement.host or (DEFAULT_GROUP if inventory.members(DEFAULT_GROUP) else "all")
        hosts = inventory.members(target)
        if not hosts:
            known = ", ".join(sorted(set(inventory.hosts) | set(inventory.groups))) or "none"
            problems.append(f"{path}.host: {target!r} is not a host or group of the inventory; "
                            f"known: {known}")
            return None
        turn = rotation.get(target, 0)
        rotation[target] = turn + 1
        return hosts[turn % len(hosts)]

    placed = [("server", "server", 0, testbed.server, "server",
               pick(testbed.server, "server"))]
    index = 0
    for position, group in enumerate(testbed.clients):
        for _ in range(group.count):
            index += 1
            path = f"clients[{position}]"
            placed.append((f"client-{index}", "client", index, group, path, pick(group, path)))
    return placed


def _capacity_problems(participants, inventory, problems):
    """Refuse a participant larger than its host; warn when a host is oversubscribed."""
    warnings, seen = [], set()
    load = {}
    for participant in participants:
        host, cpus = participant["host"], participant["cpus"]
        host_cpus = inventory.host_cpus(host)
        load[host] = load.get(host, 0.0) + cpus
        key = (participant["field"], host)
        if host_cpus is not None and cpus > host_cpus and key not in seen:
            seen.add(key)
            problems.append(
                f"{participant['field']}.profile: {participant['profile']!r} asks for {cpus:g} "
                f"CPUs but host {host!r} has {host_cpus}; use a profile with cpus <= {host_cpus}")
    for host, cpus in sorted(load.items()):
        host_cpus = inventory.host_cpus(host)
        if host_cpus is not None and cpus > host_cpus:
            warnings.append(
                f"host {host!r} is oversubscribed: its participants ask for {cpus:g} CPUs and it "
                f"has {host_cpus}; they will compute slower than their profiles say")
    return warnings
