#!/usr/bin/python
"""Ansible module: give running participant containers their devices' CPU quotas."""

DOCUMENTATION = r"""
module: flbed_cpu_quota
short_description: Set or lift the CPU quota of running flbed participant containers
description:
  - Changes the CPU quota (Docker's C(NanoCpus)) of running containers in place, without
    restarting them, and then tells each participant so by writing a file into its control
    directory.
  - flbed starts a participant at the host's speed, so that importing the framework and
    building the model do not take minutes at a small device's quota, and throttles it once it
    listens. Its entry point holds a client's join request until the file is there, so no
    part of a round runs before the quota binds.
  - Talks to the Docker Engine API on its unix socket with the Python standard library only.
options:
  participants:
    description: The participants, each with C(name), C(container) and C(cpus) (host cores;
      0 means no quota).
    type: list
    elements: dict
    required: true
  state:
    description: C(present) sets each participant's C(cpus); C(absent) lifts every quota.
    type: str
    choices: [present, absent]
    default: present
  workdir:
    description: Host directory of the testbed; the file O(signal_file) is written to
      C(<workdir>/<name>/control/). Needs O(signal_file).
    type: path
  signal_file:
    description: Name of the file written, with the time the quota was set, once a
      participant's quota is in place. Rewritten on every call that has it.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: partial
    details: The quota is only changed where it differs; O(signal_file) is rewritten each time.
notes:
  - A container that is not running cannot be updated; the module fails and names it.
"""

EXAMPLES = r"""
- name: Throttle the clients now that they listen
  flbed_cpu_quota:
    participants: "{{ my_clients }}"
    workdir: /var/lib/flbed/demo
    signal_file: throttled
"""

RETURN = r"""
participants:
  description: One entry per participant with name, container, cpus_before, cpus, changed and
    applied_at (Unix time the quota was in place).
  returned: always
  type: list
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_docker import DockerAPI, DockerError

NANO_PER_CPU = 10**9


def nano_cpus(cpus):
    """Docker's NanoCpus for a quota in host cores (0: none)."""
    return int(round(float(cpus or 0) * NANO_PER_CPU))


def current_nano_cpus(info):
    return int(info.get("HostConfig", {}).get("NanoCpus") or 0)


class QuotaManager:
    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.params = module.params
        self.results = []
        self.diff = {"before": {}, "after": {}}

    def wanted(self, participant):
        return 0 if self.params["state"] == "absent" else nano_cpus(participant.get("cpus"))

    def apply(self):
        for participant in self.params["participants"]:
            self.apply_one(participant)
        return any(entry["changed"] for entry in self.results)

    def apply_one(self, participant):
        container = participant["container"]
        info = self.api.inspect_container(container)
        if info is None or not info.get("State", {}).get("Running"):
            self.module.fail_json(msg=f"cannot set the CPU quota of {participant['name']!r}: "
                                      f"its container {container!r} is not running",
                                  participants=self.results)
        before, wanted = current_nano_cpus(info), self.wanted(participant)
        changed = before != wanted
        if changed and not self.module.check_mode:
            self.api.update_container(container, {"NanoCpus": wanted})
        applied_at = time.time()
        self.diff["before"][participant["name"]] = before / NANO_PER_CPU
        self.diff["after"][participant["name"]] = wanted / NANO_PER_CPU
        if self.params["signal_file"] and not self.module.check_mode:
            self.signal(participant["name"], applied_at, wanted)
        self.results.append({"name": participant["name"], "container": container,
                             "cpus_before": before / NANO_PER_CPU,
                             "cpus": wanted / NANO_PER_CPU, "changed": changed,
                             "applied_at": round(applied_at, 3)})

    def signal(self, name, applied_at, wanted):
        path = os.path.join(self.params["workdir"], name, "control", self.params["signal_file"])
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump({"applied_at": applied_at, "cpus": wanted / NANO_PER_CPU}, handle)
        os.chmod(path + ".tmp", 0o644)
        os.replace(path + ".tmp", path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            participants=dict(type="list", elements="dict", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            workdir=dict(type="path"),
            signal_file=dict(type="str"),
        ),
        required_by={"signal_file": "workdir"},
        supports_check_mode=True,
    )
    manager = QuotaManager(module, DockerAPI())
    try:
        changed = manager.apply()
    except (DockerError, OSError) as error:
        module.fail_json(msg=f"cannot set CPU quotas: {error}", participants=manager.results)
    extra = {"diff": manager.diff} if module._diff else {}
    module.exit_json(changed=changed, participants=manager.results, **extra)


if __name__ == "__main__":
    main()
