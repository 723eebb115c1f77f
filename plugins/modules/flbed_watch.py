#!/usr/bin/python
"""Ansible module: report the state of a testbed's participants on one Docker host."""

DOCUMENTATION = r"""
module: flbed_watch
short_description: Watch the participant containers of a flbed testbed
description:
  - Reads the state of every container of a testbed on this Docker host (found by the label
    C(flbed.testbed)), the training round the server has reached, and whether the run has
    finished, failed or passed its deadline.
  - Used in a retry loop while a run trains, by C(flbed status), and to save each container's
    log when results are collected.
  - Talks to the Docker Engine API on its unix socket with the Python standard library only, so
    the managed host needs no Docker SDK.
options:
  testbed:
    description: Name of the testbed; containers carry it in the label C(flbed.testbed).
    type: str
    required: true
  participants:
    description:
      - The participants expected on this host, each with C(name) and C(container).
      - A participant whose container is missing counts as failed. When omitted, every
        container with the testbed's label is reported and none is expected.
    type: list
    elements: dict
  server_container:
    description: The server's container, when it runs on this host; its exit ends the run.
    type: str
  server_output_dir:
    description: Host directory holding the server's FederatedScope output, read for the round.
    type: path
  deadline:
    description: Unix time after which the run counts as timed out.
    type: float
  poll_s:
    description:
      - Wait up to this many seconds for something to change (a new round, an exit) before
        answering, so a retry loop needs few round trips. 0 answers at once.
    type: float
    default: 0
  logs_dir:
    description: When set, each participant's container log is written to
      C(<logs_dir>/<name>/container.log).
    type: path
  log_tail_lines:
    description: How many of a failed participant's last log lines to return.
    type: int
    default: 30
  workdir:
    description:
      - Host directory of the testbed; each participant's control files are under
        C(<workdir>/<name>/control/).
      - When set, every look samples each running container's memory from its cgroup and keeps
        the highest use seen in C(<workdir>/<name>/memory.json), since a container's cgroup
        vanishes when it stops, and a failure report needs the peak.
    type: path
  fault_timeout_s:
    description:
      - Fail the participants that hold the run up once no participant on this host has shown
        a sign of progress for this many seconds (see the notes). Needs O(workdir),
        O(launched_at) and participants with their C(role). Unset, only exits are failures.
    type: float
  launched_at:
    description:
      - Unix time at which this run's training was launched. Progress records of an earlier
        run under the same O(workdir) are ignored.
    type: float
  active_cpu_pct:
    description:
      - CPU use, in percent of one host core over a few seconds, above which a participant
        counts as computing, hence making progress. 0 leaves CPU use out, as it must be when
        waiting participants spin.
    type: float
    default: 2.0
  wait_for_file:
    description:
      - Wait, up to O(poll_s), until every participant has written this control file
        (C(waiting) once its image has loaded the framework, C(ready) once it listens), or
        one fails. Needs O(workdir).
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Only reads, except that O(logs_dir) (re)writes the log files.
notes:
  - A participant has failed when its container is missing, exited with a non-zero status, or
    was killed by the out-of-memory killer. A kill counts as one when the engine says so, or
    when the container's own cgroup counted a kill, or when it died by SIGKILL with its memory
    use at its limit.
  - The run has finished when the server's container exited with status 0 and the other
    participants of its host have stopped too (a client that finished stays until the server
    is gone), or 30 s after the server exited; on a host without the server, when every
    participant there exited with status 0.
  - With O(fault_timeout_s), a participant shows progress when its output under
    C(<workdir>/<name>/out) grows, when its CPU use is above O(active_cpu_pct), or when its
    link carries more than a trickle. When none on this host has, for O(fault_timeout_s),
    the host is stalled. The participants named for it are the clients whose log has no
    client id (they never joined), else the clients whose last round is behind, else the
    clients whose log grew after the last message they sent, else the server. What is kept between two calls is in
    C(<workdir>/<name>/progress.json).
  - Each host judges from its own participants. On a testbed spread over hosts, a host
    whose participants all wait for another host's looks stalled after O(fault_timeout_s),
    so the timeout must be longer than such a wait (about one round).
"""

EXAMPLES = r"""
- name: Wait until training ends, showing the round
  flbed_watch:
    testbed: demo
    participants: "{{ my_participants }}"
    server_container: flbed-demo-server
    server_output_dir: /var/lib/flbed/demo/server/out
    deadline: "{{ deadline }}"
    poll_s: 5
  register: flbed_watch_state
  until: flbed_watch_state.finished or flbed_watch_state.failed or flbed_watch_state.timed_out
  retries: 100000
  delay: 0
"""

RETURN = r"""
participants:
  description: One entry per container, with name, container, state, exit_code, oom_killed,
    memory_bytes (its limit), memory_usage_bytes (working set now) and memory_peak_bytes
    (highest use seen while watching, with O(workdir)).
  returned: always
  type: list
round:
  description: The training round in progress, counted from 1, or null before the first.
  returned: always
  type: int
finished:
  description: The run ended well on this host.
  returned: always
  type: bool
not_yet:
  description: Participants that have not written O(wait_for_file) yet.
  returned: when O(wait_for_file) is set
  type: list
failed_participants:
  description: Participants that failed, each with name, reason, exit_code, oom_killed and
    log_tail (their last log lines).
  returned: always
  type: list
timed_out:
  description: The deadline has passed without the run finishing.
  returned: always
  type: bool
stalled:
  description: No participant on this host showed progress for O(fault_timeout_s).
  returned: when O(fault_timeout_s) is set
  type: bool
quiet_s:
  description: Seconds since the last sign of progress of a participant on this host.
  returned: when O(fault_timeout_s) is set
  type: float
"""

import calendar
import glob
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_cgroup import ContainerCgroups
from ansible.module_utils.flbed_docker import DockerAPI, DockerError
from ansible.module_utils import flbed_netstats, flbed_progress

ROUND_PATTERN = re.compile(r"Round #?(\d+)")
LABEL = "flbed.testbed"
POLL_STEP_S = 0.5
MEMORY_FILE = "memory.json"
SIGKILL_EXIT = 137
# A SIGKILLed container whose highest sampled use is this close to its limit ran out of memory.
NEAR_LIMIT_FRACTION = 0.9
# Clients that finished stay until the server's name is gone; on the server's own host they
# end within a second of it. A client still running this long after is left to teardown.
CLIENTS_AFTER_SERVER_S = 30.0
MIB = 2**20


def read_round(output_dir):
    """The round in progress, counted from 1, from the server's log; None before the first.

    FederatedScope numbers rounds from 0 ("Starting training (Round #0)").
    """
    if not output_dir:
        return None
    found = None
    for path in glob.glob(os.path.join(output_dir, "*", "exp_print.log")):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                match = ROUND_PATTERN.search(line)
                if match:
                    found = max(found or 0, int(match.group(1)) + 1)
    return found


def describe(name, container, info):
    """One participant's state from the engine's inspect answer (None: no such container)."""
    if info is None:
        return {"name": name, "container": container, "state": "missing",
                "exit_code": None, "oom_killed": False, "finished_at": None}
    state = info.get("State", {})
    return {"name": name, "container": container, "state": state.get("Status", "unknown"),
            "exit_code": state.get("ExitCode") if state.get("Status") == "exited" else None,
            "oom_killed": bool(state.get("OOMKilled")),
            "memory_bytes": info.get("HostConfig", {}).get("Memory") or None,
            "finished_at": engine_time(state.get("FinishedAt"))}


def server_ended_well(entries, server):
    """The server's entry when its container exited with status 0, else None."""
    return next((e for e in entries if e["container"] == server and e["state"] == "exited"
                 and e["exit_code"] == 0), None)


def server_finished(entries, server, now):
    """The server's container exited with status 0, and the others of its host have stopped
    or had CLIENTS_AFTER_SERVER_S to do so."""
    ended = server_ended_well(entries, server)
    return ended is not None and (all(e["state"] != "running" for e in entries)
                                  or now - (ended["finished_at"] or 0) > CLIENTS_AFTER_SERVER_S)


def engine_time(text):
    """Seconds since the epoch of an engine timestamp ("2026-12-04T08:14:20.1234Z"), to the
    second; None for the engine's zero time or no time."""
    try:
        seconds = calendar.timegm(time.strptime((text or "")[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def mib(value):
    return f"{value / MIB:.1f} MiB"


def merge_memory(kept, sample):
    """The record kept per participant after one more cgroup sample."""
    kept = dict(kept or {})
    for key in ("peak_bytes", "oom_kills"):
        values = [v for v in (kept.get(key), sample.get(key)) if v is not None]
        kept[key] = max(values) if values else None
    if sample.get("working_set_bytes") is not None:
        kept["usage_bytes"] = sample["working_set_bytes"]
    return kept


def ran_out_of_memory(entry):
    """Killed for memory: the engine's flag, the cgroup's kill count, or SIGKILL at the limit."""
    if entry["oom_killed"] or (entry.get("oom_kills") or 0) > 0:
        return True
    limit, peak = entry.get("memory_bytes"), entry.get("memory_peak_bytes")
    return (entry["exit_code"] == SIGKILL_EXIT and bool(limit) and peak is not None
            and peak >= NEAR_LIMIT_FRACTION * limit)


def failure_reason(entry):
    if entry["state"] == "missing":
        return "its container vanished"
    if entry["oom_killed"]:
        limit = entry.get("memory_bytes")
        peak = entry.get("memory_peak_bytes")
        where = f" at its memory limit of {mib(limit)}" if limit else ""
        seen = f" (highest use seen {mib(peak)})" if peak else ""
        return f"killed by the out-of-memory killer{where}{seen}"
    if entry["state"] in ("exited", "dead") and entry["exit_code"] != 0:
        return f"exited with status {entry['exit_code']}"
    return None


class Watcher:
    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.params = module.params

    def expected(self):
        if self.params["participants"] is not None:
            return [(p["name"], p["container"]) for p in self.params["participants"]]
        found = self.api.list_containers(labels={LABEL: self.params["testbed"]})
        return sorted(
            (c.get("Labels", {}).get("flbed.participant") or c["Names"][0].lstrip("/"),
             c["Names"][0].lstrip("/")) for c in found)

    def sample_memory(self, entry, info):
        """Fold the container's current memory use into its record under the workdir."""
        workdir = self.params["workdir"]
        path = os.path.join(workdir, entry["name"], MEMORY_FILE) if workdir else None
        kept = {}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                kept = json.load(handle)
        pid = (info or {}).get("State", {}).get("Pid") or 0
        if entry["state"] == "running" and pid > 0:
            kept = merge_memory(kept, ContainerCgroups(pid).memory())
            if path and os.path.isdir(os.path.dirname(path)) and not self.module.check_mode:
                with open(path, "w", encoding="utf-8") as handle:
                    json.dump(kept, handle)
        entry["memory_usage_bytes"] = kept.get("usage_bytes")
        entry["memory_peak_bytes"] = kept.get("peak_bytes")
        entry["oom_kills"] = kept.get("oom_kills")
        entry["oom_killed"] = ran_out_of_memory(entry)

    def track_progress(self, entry, info):
        """Fold the participant's signs of progress into its record under the workdir."""
        folder = os.path.join(self.params["workdir"], entry["name"])
        path = os.path.join(folder, flbed_progress.PROGRESS_FILE)
        launched_at = self.params["launched_at"]
        record = flbed_progress.load(path) or {}
        if record.get("launched_at") != launched_at:
            record = flbed_progress.fresh_record(launched_at, time.time())
        pid = (info or {}).get("State", {}).get("Pid") or 0
        running = entry["state"] == "running" and pid > 0
        link, sent = flbed_progress.link_bytes(
            flbed_netstats.read_net_dev(pid) if running else None)
        sample = {"running": running, "link_bytes": link, "tx_bytes": sent,
                  "out_bytes": flbed_progress.read_outputs(os.path.join(folder, "out"), record),
                  "cpu_ns": ContainerCgroups(pid).cpu_usage_ns() if running else None}
        record = flbed_progress.update(record, sample, time.time(), launched_at,
                                       self.params["active_cpu_pct"])
        if os.path.isdir(folder) and not self.module.check_mode:
            flbed_progress.save(path, record)
        return record

    def stall(self, entries, records, server_round):
        """(quiet seconds, failures) of a host whose participants all stopped progressing."""
        now = time.time()
        quiet_s = flbed_progress.quiet_s(list(records.values()), now)
        if quiet_s is None or quiet_s < self.params["fault_timeout_s"]:
            return quiet_s, []
        roles = {p["name"]: p.get("role") for p in self.params["participants"] or []}
        running = [dict(e, role=roles.get(e["name"]), progress=records[e["name"]])
                   for e in entries if e["state"] == "running"]
        found = flbed_progress.culprits(running, server_round, quiet_s)
        return quiet_s, [dict({k: v for k, v in e.items() if k not in ("progress", "role")},
                              reason=reason, stalled=True, quiet_s=round(quiet_s, 1))
                         for e, reason in found]

    def look(self):
        entries, records = [], {}
        tracking = self.params["fault_timeout_s"] is not None
        server_round = read_round(self.params["server_output_dir"])
        for name, container in self.expected():
            info = self.api.inspect_container(container)
            entry = describe(name, container, info)
            self.sample_memory(entry, info)
            if tracking:
                records[name] = self.track_progress(entry, info)
            entries.append(entry)
        failed = []
        for entry in entries:
            reason = failure_reason(entry)
            if reason:
                failed.append(dict(entry, reason=reason))
        server = self.params["server_container"]
        if server:
            finished = server_finished(entries, server, time.time())
        else:
            finished = bool(entries) and all(
                e["state"] == "exited" and e["exit_code"] == 0 for e in entries)
        state = {"participants": entries, "failed_participants": failed,
                 "finished": finished, "round": server_round}
        if tracking:
            # Once the server ended well, the clients still up only wait for it to be gone.
            done = finished or (server and server_ended_well(entries, server) is not None)
            quiet_s, stuck = (None, []) if failed or done else self.stall(
                entries, records, state["round"])
            state.update(stalled=bool(stuck), quiet_s=quiet_s, failed_participants=failed + stuck)
        if self.params["wait_for_file"]:
            state["not_yet"] = [name for name, _ in self.expected() if not os.path.exists(
                os.path.join(self.params["workdir"], name, "control",
                             self.params["wait_for_file"]))]
        return state

    def watch(self):
        """Look until something changes, the poll time is up, or the run is over."""
        give_up = time.time() + self.params["poll_s"]
        first = self.look()
        state = first
        while time.time() < give_up and not self.over(state):
            time.sleep(POLL_STEP_S)
            state = self.look()
            if "not_yet" not in state and self.signature(state) != self.signature(first):
                break
        deadline = self.params["deadline"]
        state["timed_out"] = bool(deadline) and time.time() > deadline and not state["finished"]
        for entry in state["failed_participants"]:
            entry["log_tail"] = self.log_tail(entry)
        return state

    @staticmethod
    def over(state):
        if "not_yet" in state:
            return not state["not_yet"] or bool(state["failed_participants"])
        return state["finished"] or bool(state["failed_participants"])

    @staticmethod
    def signature(state):
        return (state["round"], [(e["state"], e["exit_code"]) for e in state["participants"]])

    def log_tail(self, entry):
        if entry["state"] == "missing":
            return ""
        try:
            return self.api.container_logs(entry["container"],
                                           tail=self.params["log_tail_lines"])
        except DockerError as error:
            return f"(log unavailable: {error})"

    def save_logs(self, entries):
        for entry in entries:
            if entry["state"] == "missing":
                continue
            folder = os.path.join(self.params["logs_dir"], entry["name"])
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "container.log"), "w", encoding="utf-8") as handle:
                handle.write(self.api.container_logs(entry["container"], tail="all"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            testbed=dict(type="str", required=True),
            participants=dict(type="list", elements="dict"),
            server_container=dict(type="str"),
            server_output_dir=dict(type="path"),
            deadline=dict(type="float"),
            poll_s=dict(type="float", default=0),
            logs_dir=dict(type="path"),
            log_tail_lines=dict(type="int", default=30),
            workdir=dict(type="path"),
            wait_for_file=dict(type="str", choices=["waiting", "ready"]),
            fault_timeout_s=dict(type="float"),
            launched_at=dict(type="float"),
            active_cpu_pct=dict(type="float", default=2.0),
        ),
        required_by={"wait_for_file": "workdir",
                     "fault_timeout_s": ("workdir", "launched_at", "participants")},
        supports_check_mode=True,
    )
    watcher = Watcher(module, DockerAPI())
    try:
        state = watcher.watch()
        if module.params["logs_dir"] and not module.check_mode:
            watcher.save_logs(state["participants"])
    except (DockerError, OSError) as error:
        module.fail_json(msg=f"cannot read the state of testbed "
                             f"{module.params['testbed']!r}: {error}")
    module.exit_json(changed=False, **state)


if __name__ == "__main__":
    main()
