"""Turn a testbed and an inventory into the plan that the playbooks carry out.

The plan is plain data (JSON-ready): every participant with its host, container, limits in
bytes and cores, link in bit/s, milliseconds and percent, and its FederatedScope config. It
is the only thing roles read, whether the wrapper or ``ansible-playbook`` started them: both
reach this module, so there is one planner.
"""

import datetime
import os

from . import calibration, fsconfig
from .errors import InputError

DEFAULT_GROUP = "flbed_default"
HOST_WORKDIR = "/var/lib/flbed"  # also flbed_workdir_root in playbooks/group_vars/all.yml
LABEL = "flbed.testbed"
# The testbed's word for a link setting, and the shaping module's parameter for it.
SHAPING_PARAMETERS = {"delay": "delay_ms", "jitter": "jitter_ms", "loss": "loss_pct"}
# When a participant's CPU quota binds: once it listens (start-up runs at the host's speed,
# no round before the quota), or from the container's creation.
CPU_AFTER_READY, CPU_FROM_START = "after_ready", "from_start"
# Where a participant's CPU quota comes from: its profile's cpus, its profile's throughput and
# the host's calibration, or nowhere, on a host that is the device itself.
CPUS_FROM_PROFILE, CPUS_FROM_CALIBRATION, CPUS_NATIVE = "profile", "calibration", "native"
# A native host computes at its own speed; warn when that is this far from what is asked.
NATIVE_SPEED_TOLERANCE = 0.25


def container_name(testbed, participant):
    return f"flbed-{testbed}-{participant}"


def new_run_id(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def make_plan(testbed, inventory, *, run_id=None, runs_root="runs",
              workdir_root=HOST_WORKDIR, calibrating=False):
    """The plan as a dict; InputError when the inventory cannot carry the testbed.

    ``calibrating`` plans for ``flbed calibrate``: a throughput that no host calibration can
    turn into a quota yet is no problem there."""
    problems = fsconfig.owned_key_problems(testbed.fs_config)
    placements = _place(testbed, inventory, problems)
    if problems:
        raise InputError(problems)

    run_id = run_id or new_run_id()
    runs_root = os.path.abspath(runs_root)
    compute = _Compute(inventory, runs_root, calibration.workload_key(testbed.fs_config),
                       calibrating)
    server_container = container_name(testbed.name, "server")
    participants = []
    for (name, role, index, group, path, host) in placements:
        profile = testbed.profiles[group.profile]
        container = container_name(testbed.name, name)
        config = fsconfig.render(
            testbed.fs_config, role=role, data_idx=index, client_num=testbed.client_count,
            server_host=server_container, own_host=container)
        cpus, cpus_from = compute.quota(profile, host, path)
        participants.append({
            "name": name, "role": role, "index": index, "host": host, "field": path,
            "profile": profile.name, "container": container,
            "cpus": cpus, "cpus_from": cpus_from,
            "throughput_steps_per_s": profile.throughput_steps_per_s,
            "memory_bytes": profile.memory_bytes,
            "link": profile.link.as_dict(), "port": fsconfig.GRPC_PORT,
            "listen": f"{container}:{fsconfig.GRPC_PORT}", "env": group.env,
            "fs_config": config,
        })

    problems += compute.problems
    warnings = compute.warnings + _capacity_problems(participants, inventory, problems)
    if problems:
        raise InputError(problems)
    return {
        "testbed": testbed.name,
        "description": testbed.description,
        "testbed_file": testbed.path,
        "run_id": run_id,
        "run_dir": os.path.join(runs_root, testbed.name, run_id),
        "label": {LABEL: testbed.name},
        "network": f"flbed-{testbed.name}",
        "host_workdir": f"{workdir_root}/{testbed.name}",
        "timeout_s": testbed.timeout_s,
        "fault_timeout_s": testbed.fault_timeout_s,
        "total_rounds": fsconfig.total_rounds(testbed.fs_config),
        "fs_source": testbed.fs_source,
        "image": testbed.image,
        "allow_missing": [SHAPING_PARAMETERS[setting] for setting in testbed.allow_missing],
        "verify_links": testbed.verify_links,
        "fs_wait": testbed.fs_wait,
        "cpu_policy": CPU_FROM_START if testbed.throttle_from_start else CPU_AFTER_READY,
        "hosts": sorted({p["host"] for p in participants}),
        "workload": {
            "key": compute.workload_key,
            "fs_config": next(p["fs_config"] for p in participants if p["role"] == "client"),
            "calibrations": compute.used,
        },
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


class _Compute:
    """Each participant's CPU quota, from its profile or from its host's calibration."""

    def __init__(self, inventory, runs_root, workload_key, calibrating):
        self.inventory = inventory
        self.runs_root = runs_root
        self.workload_key = workload_key
        self.calibrating = calibrating
        self.records = {}
        self.used = {}            # host -> path of the calibration record the plan used
        self.problems, self.warnings = [], []
        self.reported = set()

    def record(self, host):
        if host not in self.records:
            self.records[host] = calibration.load_record(self.runs_root, host,
                                                         self.workload_key)
        return self.records[host]

    def once(self, messages, field, host, text):
        if (field, host, text) not in self.reported:
            self.reported.add((field, host, text))
            messages.append(text)

    def quota(self, profile, host, field):
        """(cpus or None, where they come from)."""
        throughput = profile.throughput_steps_per_s
        if self.inventory.native_compute(host):
            if throughput is not None:
                self.check_native_speed(profile, host, field)
            return None, CPUS_NATIVE
        if throughput is None:
            return profile.cpus, CPUS_FROM_PROFILE
        record = self.record(host)
        if record is None:
            if not self.calibrating:
                self.once(self.problems, field, host,
                          f"{field}.profile: {profile.name!r} states its compute as "
                          f"{throughput:g} steps/s, but host {host!r} has no calibration for "
                          "this testbed's model; run `flbed calibrate FILE -i INVENTORY` first")
            return None, CPUS_FROM_CALIBRATION
        self.used[host] = calibration.record_path(self.runs_root, host, self.workload_key)
        try:
            return calibration.quota_for(throughput, record), CPUS_FROM_CALIBRATION
        except ValueError as error:
            self.once(self.problems, field, host,
                      f"{field}.profile: {profile.name!r} asks for {throughput:g} steps/s, "
                      f"but {error}; lower its throughput or place it on a faster host")
            return None, CPUS_FROM_CALIBRATION

    def check_native_speed(self, profile, host, field):
        record = self.record(host)
        wanted = profile.throughput_steps_per_s
        if record is None or not record.get("steps_per_s_full_speed"):
            self.once(self.warnings, field, host,
                      f"host {host!r} computes at its own speed and was never calibrated: "
                      f"{field}.profile {profile.name!r} asks for {wanted:g} steps/s; run "
                      "`flbed calibrate` to know what it delivers")
            return
        measured = record["steps_per_s_full_speed"]
        if abs(measured - wanted) > NATIVE_SPEED_TOLERANCE * wanted:
            self.once(self.warnings, field, host,
                      f"host {host!r} computes at its own speed, {measured:g} steps/s, but "
                      f"{field}.profile {profile.name!r} asks for {wanted:g} steps/s")


def _capacity_problems(participants, inventory, problems):
    """Refuse a participant larger than its host; warn when a host is oversubscribed."""
    warnings, seen = [], set()
    load = {}
    for participant in participants:
        host, cpus = participant["host"], participant["cpus"] or 0.0
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
