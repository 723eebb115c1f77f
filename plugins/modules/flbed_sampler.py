#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: sample a testbed's containers (CPU, memory, link counters) while it trains."""

DOCUMENTATION = r"""
module: flbed_sampler
short_description: Sample the CPU, memory and link counters of a testbed's containers
description:
  - With O(state=started), samples every participant container on this Docker host at a fixed
    interval until told to stop, until every container has exited, or until
    O(max_duration_s) has passed. Meant to run in the background (C(async) with C(poll=0))
    while the testbed trains.
  - Each sample reads the container's cgroup files (CPU time used, memory in use) and
    C(/proc/<pid>/net/dev) of its network namespace; one row per sample goes to
    C(<workdir>/<name>/resources.csv) (C(time_s), C(cpu_pct), C(memory_bytes), C(unix_s)),
    written as it is taken, so a run that dies still leaves what was seen.
  - Every O(tc_every_s) it also reads the statistics of every queueing discipline in the
    container's namespace (C(nsenter -t PID -n tc -s -j qdisc show)), which includes the
    download side's ifb device. The last reading of each container, taken while it still
    ran, is written to C(<workdir>/<name>/link_stats.json).
  - With O(state=stopped), asks a running sampler to take one last reading of the
    containers still running, waits for it to write its files, and returns what it did.
  - Reads the host only (no C(nsenter) into anything but the network namespace, no change
    to any container); writes only under O(workdir).
options:
  state:
    description: C(started) runs the sampling loop; C(stopped) ends a running one.
    type: str
    choices: [started, stopped]
    default: started
  workdir:
    description: Host directory of the testbed; participant C(<name>) writes to
      C(<workdir>/<name>/), and the sampler keeps its signals in C(<workdir>/.flbed_sampler/).
    type: path
    required: true
  participants:
    description: The participants on this host, each with C(name) and C(container).
      Required with O(state=started).
    type: list
    elements: dict
  interval_s:
    description: Seconds between two samples of a container's CPU, memory and link counters.
    type: float
    default: 1.0
  tc_every_s:
    description: Seconds between two readings of the qdisc statistics, which cost one
      process per container.
    type: float
    default: 5.0
  max_duration_s:
    description: The loop ends after this many seconds in any case.
    type: float
    default: 86400
  stop_wait_s:
    description: With O(state=stopped), how long to wait for the sampler's last reading.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    details: In check mode nothing is sampled, written or signalled.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every sampling run writes new samples.
notes:
  - CPU is given in percent of one host core (200 is two full cores), from the cgroup's CPU
    time between two samples; memory is the cgroup's use, page cache included. Both cgroup v1
    and v2 are read, from the paths in C(/proc/<pid>/cgroup).
  - A container's namespace and cgroup vanish when it exits, so its link statistics are the
    last reading taken while it ran, up to O(interval_s) (counters) or O(tc_every_s) (qdiscs)
    before its exit. C(read_at_unix_s) and C(qdiscs_read_at_unix_s) tell when.
  - The loop costs a few file reads per container and second; its own CPU time is returned
    (C(sampler_cpu_s)) so a run can tell whether sampling weighed on training.
"""

EXAMPLES = r"""
- name: Sample the containers while the testbed trains
  flbed_sampler:
    participants: "{{ my_participants }}"
    workdir: /var/lib/flbed/demo
    max_duration_s: 3600
  async: 4000
  poll: 0

- name: Stop sampling and wait for its files
  flbed_sampler:
    state: stopped
    workdir: /var/lib/flbed/demo
"""

RETURN = r"""
running:
  description: With O(state=stopped), whether a sampler was running.
  returned: when O(state=stopped)
  type: bool
samples:
  description: Number of resource rows written per participant.
  returned: when the loop ran
  type: dict
duration_s:
  description: How long the loop ran.
  returned: when the loop ran
  type: float
sampler_cpu_s:
  description: CPU time the sampling loop itself used, its tc processes included.
  returned: when the loop ran
  type: float
ended_because:
  description: C(stopped), C(all exited) or C(max duration).
  returned: when the loop ran
  type: str
"""

import json
import os
import resource
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_cgroup import ContainerCgroups
from ansible.module_utils.flbed_docker import DockerAPI, DockerError
from ansible.module_utils import flbed_netstats

SIGNAL_DIR = ".flbed_sampler"
CSV_HEADER = "time_s,cpu_pct,memory_bytes,unix_s\n"
NS_PER_S = 1e9


def cpu_pct(previous_ns, now_ns, elapsed_s):
    """CPU use between two readings in percent of one core; None when it cannot be told."""
    if previous_ns is None or now_ns is None or elapsed_s <= 0 or now_ns < previous_ns:
        return None
    return 100.0 * (now_ns - previous_ns) / NS_PER_S / elapsed_s


def csv_row(time_s, pct, memory_bytes, unix_s):
    def cell(value, fmt):
        return "" if value is None else fmt % value
    return "%s,%s,%s,%s\n" % (cell(time_s, "%.3f"), cell(pct, "%.2f"),
                              cell(memory_bytes, "%d"), cell(unix_s, "%.3f"))


def _own_cpu_s():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def write_json(path, data):
    """Replace a file whole, so a reader never sees half of it."""
    with open(path + ".part", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".part", path)


class Target:
    """One participant container and what has been seen of it."""

    def __init__(self, participant, directory):
        self.name = participant["name"]
        self.container = participant["container"]
        self.directory = directory
        self.pid, self.cgroups, self.csv = None, None, None
        self.last_cpu_ns, self.last_at = None, None
        self.samples, self.gone = 0, False
        self.link = {"participant": self.name, "container": self.container,
                     "device": flbed_netstats.LINK_DEVICE, "devices": None, "qdiscs": None,
                     "read_at_unix_s": None, "qdiscs_read_at_unix_s": None}

    def attach(self, state):
        self.pid = state.get("Pid")
        self.cgroups = ContainerCgroups(self.pid)
        os.makedirs(self.directory, exist_ok=True)
        self.csv = open(os.path.join(self.directory, "resources.csv"), "w", encoding="ascii")
        self.csv.write(CSV_HEADER)
        self.csv.flush()

    def sample(self, started, with_qdiscs):
        now, unix_s = time.monotonic(), time.time()
        devices = flbed_netstats.read_net_dev(self.pid)
        used_ns = self.cgroups.cpu_usage_ns()
        if devices is None or used_ns is None:
            self.gone = True
            return
        memory = self.cgroups.memory().get("usage_bytes")
        self.link.update(devices=devices, read_at_unix_s=round(unix_s, 3))
        if with_qdiscs:
            qdiscs = flbed_netstats.read_qdiscs(self.pid)
            if qdiscs is not None:
                self.link.update(qdiscs=qdiscs, qdiscs_read_at_unix_s=round(unix_s, 3))
        if self.last_at is not None:
            pct = cpu_pct(self.last_cpu_ns, used_ns, now - self.last_at)
            self.csv.write(csv_row(now - started, pct, memory, unix_s))
            self.csv.flush()
            self.samples += 1
        self.last_cpu_ns, self.last_at = used_ns, now

    def finish(self, still_running):
        if self.csv:
            self.csv.close()
        if self.link["devices"] is None:
            return
        record = dict(self.link, running_at_last_read=still_running)
        record.update(flbed_netstats.link_totals(self.link["devices"], self.link["qdiscs"]))
        write_json(os.path.join(self.directory, "link_stats.json"), record)


class Sampler:
    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.params = module.params
        self.signals = os.path.join(self.params["workdir"], SIGNAL_DIR)

    def _signal(self, name):
        return os.path.join(self.signals, name)

    def present(self):
        """Sample until stopped, every container gone, or the longest duration passed."""
        if self.module.check_mode:
            return {"changed": False}
        os.makedirs(self.signals, exist_ok=True)
        for stale in ("stop", "done.json"):
            if os.path.exists(self._signal(stale)):
                os.remove(self._signal(stale))
        write_json(self._signal("started.json"), {"pid": os.getpid(), "unix_s": time.time()})
        targets = [Target(p, os.path.join(self.params["workdir"], p["name"]))
                   for p in self.params["participants"]]
        result = self._loop(targets)
        write_json(self._signal("done.json"), result)
        return dict(result, changed=True)

    def _loop(self, targets):
        started = time.monotonic()
        next_tc, ended_because = started, "max duration"
        while time.monotonic() - started < self.params["max_duration_s"]:
            stop = os.path.exists(self._signal("stop"))
            with_qdiscs = stop or time.monotonic() >= next_tc
            if with_qdiscs:
                next_tc = time.monotonic() + self.params["tc_every_s"]
            for target in targets:
                self._sample(target, started, with_qdiscs)
            if stop:
                ended_because = "stopped"
                break
            if all(t.gone for t in targets):
                ended_because = "all exited"
                break
            time.sleep(max(0.0, self.params["interval_s"] - (time.monotonic() - started)
                           % self.params["interval_s"]))
        for target in targets:
            target.finish(still_running=not target.gone)
        return {"samples": {t.name: t.samples for t in targets},
                "duration_s": round(time.monotonic() - started, 3),
                "sampler_cpu_s": round(_own_cpu_s(), 3), "ended_because": ended_because}

    def _sample(self, target, started, with_qdiscs):
        if target.gone:
            return
        if target.pid is None:
            try:
                state = (self.api.inspect_container(target.container) or {}).get("State", {})
            except DockerError:
                return
            if not state.get("Running") or not state.get("Pid"):
                target.gone = not state or state.get("Status") in ("exited", "dead")
                return
            target.attach(state)
        target.sample(started, with_qdiscs)

    def _alive(self):
        """Whether the sampler that wrote started.json still runs (a killed one never
        writes done.json)."""
        try:
            with open(self._signal("started.json"), encoding="utf-8") as handle:
                pid = json.load(handle)["pid"]
        except (OSError, ValueError, KeyError):
            return False
        return os.path.exists("/proc/%d" % pid)

    def absent(self):
        """Ask the running sampler to stop, and wait for its last reading; a sampler that
        has finished already is left as it is (no change)."""
        if not os.path.exists(self._signal("started.json")):
            return {"changed": False, "running": False}
        done = self._signal("done.json")
        already_done = os.path.exists(done)
        if not already_done and not self._alive():
            return {"changed": False, "running": False}
        if self.module.check_mode:
            return {"changed": not already_done, "running": True}
        if not already_done:
            with open(self._signal("stop"), "w", encoding="ascii") as handle:
                handle.write("stop\n")
        deadline = time.monotonic() + self.params["stop_wait_s"]
        while not os.path.exists(done) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not os.path.exists(done):
            self.module.warn("the sampler under %s did not finish within %g s; its files may "
                             "lack the last samples" % (self.signals, self.params["stop_wait_s"]))
            return {"changed": True, "running": True}
        with open(done, encoding="utf-8") as handle:
            return dict(json.load(handle), changed=not already_done, running=True)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["started", "stopped"], default="started"),
            workdir=dict(type="path", required=True),
            participants=dict(type="list", elements="dict"),
            interval_s=dict(type="float", default=1.0),
            tc_every_s=dict(type="float", default=5.0),
            max_duration_s=dict(type="float", default=86400.0),
            stop_wait_s=dict(type="float", default=30.0),
        ),
        required_if=[("state", "started", ["participants"])],
        supports_check_mode=True,
    )
    if module.params["interval_s"] <= 0:
        module.fail_json(msg="interval_s is %r; use a number of seconds above 0"
                         % module.params["interval_s"])
    sampler = Sampler(module, DockerAPI())
    try:
        result = sampler.present() if module.params["state"] == "started" else sampler.absent()
    except (OSError, DockerError) as error:
        module.fail_json(msg="sampling the containers under %s failed: %s"
                         % (module.params["workdir"], error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
