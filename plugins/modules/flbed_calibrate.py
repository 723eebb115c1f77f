#!/usr/bin/python
"""Ansible module: measure how fast a host trains the reference workload at several quotas."""

DOCUMENTATION = r"""
module: flbed_calibrate
short_description: Measure a host's training speed at several CPU quotas
description:
  - Drives a running calibration container of the flbed participant image (its
    C(/opt/flbed/calibrate.py)) through one measurement per quota. The container builds the
    configured model at the host's full speed; then, for each quota, the module sets the
    container's CPU quota (Docker's C(NanoCpus)), asks for a measurement through the shared
    control directory and reads back the training steps per second.
  - A quota of 0 measures the host's full speed, with no quota.
  - The measurement changes nothing on the host that outlives the container, so the module
    never reports a change; it does nothing in check mode.
  - Talks to the Docker Engine API on its unix socket with the Python standard library only.
options:
  container:
    description: Name of the running calibration container.
    type: str
    required: true
  control_dir:
    description: Host directory mounted as the container's control directory.
    type: path
    required: true
  quotas:
    description: CPU quotas to measure at, in host cores, in this order; 0 is the host's full
      speed.
    type: list
    elements: float
    required: true
  measure_s:
    description: Seconds of training per measurement (at least three steps are always run).
    type: float
    default: 3.0
  warm_timeout_s:
    description: Seconds the container may take to build the model and warm up.
    type: float
    default: 600
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
notes:
  - A measurement at a small quota of a large model can take many times O(measure_s), since
    at least three steps run; each waits at most 60 s plus 30 times O(measure_s).
"""

EXAMPLES = r"""
- name: Measure the host at a tenth of a core, a whole core and full speed
  flbed_calibrate:
    container: flbed-default-calibrate
    control_dir: /var/lib/flbed/default/calibrate/control
    quotas: [0.1, 1.0, 0]
"""

RETURN = r"""
host_cpus:
  description: The host's core count.
  returned: success
  type: int
warm:
  description: What the container built (model, data, parameters, batch size).
  returned: success
  type: dict
points:
  description: One entry per quota, with C(cpus), C(steps), C(seconds), C(steps_per_s) and
    C(cpus_used), the cores the container used on average from the request to the result
    (null when its cgroup could not be read).
  returned: success
  type: list
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_cgroup import ContainerCgroups
from ansible.module_utils.flbed_docker import DockerAPI, DockerError

NANO_PER_CPU = 10**9
POLL_S = 0.1
LOG_TAIL_LINES = 20


class Calibration:
    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.params = module.params
        self.points = []

    def control(self, name):
        return os.path.join(self.params["control_dir"], name)

    def wait_for(self, name, timeout_s, what):
        """The JSON in control file ``name``; fails naming ``what`` when the container stops
        or the time runs out first."""
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(self.control(name)):
            info = self.api.inspect_container(self.params["container"])
            if info is None or not info.get("State", {}).get("Running"):
                self.fail(f"the calibration container stopped before {what}")
            if time.monotonic() > deadline:
                self.fail(f"the calibration container did not finish {what} within "
                          f"{timeout_s:g} s")
            time.sleep(POLL_S)
        with open(self.control(name), encoding="utf-8") as handle:
            return json.load(handle)

    def fail(self, message):
        tail = self.api.container_logs(self.params["container"], tail=LOG_TAIL_LINES)
        self.module.fail_json(msg=f"{message}; its last log lines: {tail.strip()[-2000:]}",
                              points=self.points)

    def cpu_used_ns(self):
        """CPU time the calibration container has used so far; None when unreadable."""
        info = self.api.inspect_container(self.params["container"]) or {}
        pid = info.get("State", {}).get("Pid")
        return ContainerCgroups(pid).cpu_usage_ns() if pid else None

    def measure(self, index, cpus):
        nano_cpus = int(round(cpus * NANO_PER_CPU))
        self.api.update_container(self.params["container"], {"NanoCpus": nano_cpus})
        used_before, started = self.cpu_used_ns(), time.monotonic()
        request = self.control(f"measure-{index}")
        with open(request + ".tmp", "w", encoding="utf-8") as handle:
            json.dump({"seconds": self.params["measure_s"]}, handle)
        os.chmod(request + ".tmp", 0o644)
        os.replace(request + ".tmp", request)
        timeout_s = 60 + 30 * self.params["measure_s"]
        label = f"the measurement at {cpus:g} CPUs" if cpus else "the full-speed measurement"
        result = self.wait_for(f"result-{index}.json", timeout_s, label)
        used_after, elapsed = self.cpu_used_ns(), time.monotonic() - started
        # What the workload got: below its quota when other work shares the host's cores.
        cpus_used = None if used_before is None or used_after is None else \
            round((used_after - used_before) / 1e9 / elapsed, 3)
        self.points.append({"cpus": cpus, **result, "cpus_used": cpus_used})

    def run(self):
        warm = self.wait_for("warm", self.params["warm_timeout_s"], "building the model")
        for index, cpus in enumerate(self.params["quotas"]):
            self.measure(index, cpus)
        with open(self.control("done"), "w", encoding="utf-8") as handle:
            handle.write("done\n")
        return warm


def main():
    module = AnsibleModule(
        argument_spec=dict(
            container=dict(type="str", required=True),
            control_dir=dict(type="path", required=True),
            quotas=dict(type="list", elements="float", required=True),
            measure_s=dict(type="float", default=3.0),
            warm_timeout_s=dict(type="float", default=600.0),
        ),
        supports_check_mode=False,
    )
    bad = [cpus for cpus in module.params["quotas"] if cpus < 0]
    if bad:
        module.fail_json(msg=f"quotas: {bad[0]:g} is not a CPU quota; use 0 (full speed) or "
                             "a positive number of host cores")
    calibration = Calibration(module, DockerAPI())
    try:
        warm = calibration.run()
    except (DockerError, OSError, ValueError) as error:
        module.fail_json(msg=f"cannot calibrate: {error}", points=calibration.points)
    module.exit_json(changed=False, host_cpus=os.cpu_count(), warm=warm,
                     points=calibration.points)


if __name__ == "__main__":
    main()
