#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: flbed_link
short_description: Shape testbed participants' network links with Linux traffic control
description:
  - Gives a participant (a container, or a named network namespace) the upload and download
    rate, delay, jitter, loss, duplication, corruption and reordering of the device it stands
    for.
  - Shapes one participant (O(container) or O(netns) with the link options) or, in one run,
    every participant of a host (O(links)). The batch form reads each namespace's state
    with one process, applies its commands with one C(tc -batch) and C(ip -batch) per run
    of commands and works on a few namespaces at once, so fifty participants take seconds.
  - Works from the host, inside the participant's network namespace (C(nsenter)), so the
    container needs no capability and the code inside it cannot lift its own limits.
  - Upload is the egress of O(interface), shaped by a TBF qdisc at its root. Download is its
    ingress, redirected by a C(u32) match-all filter with a C(mirred) action to an ifb device
    created in the same namespace (C(ifb-flbed) for C(eth0)), whose egress is shaped the same
    way. Delay, jitter and the packet impairments go into a netem qdisc below the TBF.
  - Reads the current qdiscs with C(tc -j), compares them with what is wanted and changes
    only a direction that differs, rebuilding that direction's qdisc tree whole. After a
    change it reads them again and fails when the kernel holds something else.
  - All numbers are plain (bit/s, milliseconds, percent). Unit strings are converted by the
    flbed planner before they reach this module.
version_added: 0.1.0
author:
  - flbed contributors
options:
  container:
    description:
      - Name or ID of the Docker container to shape. Its main process gives the namespace.
      - Exactly one of O(container), O(netns) and O(links) is required.
    type: str
  netns:
    description:
      - Name of a network namespace under C(/run/netns) (as made by C(ip netns add)) to
        shape instead of a container. Meant for tests and for hosts without Docker.
    type: str
  interface:
    description: The participant's interface inside its namespace.
    type: str
    default: eth0
  up_rate_bps:
    description:
      - Upload rate in bit/s. V(0) leaves the upload rate unshaped.
      - Allowed 8000 (8 kbit/s) to 100000000000 (100 gbit/s).
    type: int
    default: 0
  down_rate_bps:
    description: Download rate in bit/s, as for O(up_rate_bps).
    type: int
    default: 0
  delay_ms:
    description: One-way delay added in each direction, in milliseconds (0 to 60000).
    type: float
    default: 0
  jitter_ms:
    description: Random variation of the delay, in milliseconds. Needs O(delay_ms) above 0.
    type: float
    default: 0
  jitter_distribution:
    description:
      - Distribution of the jitter. V(uniform) is netem's built-in one; the others use the
        distribution tables that iproute2 installs. Ignored when O(jitter_ms) is 0.
    type: str
    choices: [normal, pareto, paretonormal, uniform]
    default: normal
  loss_pct:
    description: Share of packets dropped in each direction, in percent (0 to 100).
    type: float
    default: 0
  loss_correlation_pct:
    description: How much each loss decision depends on the previous one, in percent.
    type: float
    default: 0
  duplicate_pct:
    description: Share of packets sent twice, in percent.
    type: float
    default: 0
  corrupt_pct:
    description: Share of packets with a flipped bit, in percent.
    type: float
    default: 0
  reorder_pct:
    description: Share of packets sent at once, ahead of delayed ones. Needs O(delay_ms).
    type: float
    default: 0
  links:
    description:
      - The batch form. One entry per participant to shape, each with its own target
        (O(links[].container), or O(links[].netns) and O(links[].interface)), its
        O(links[].participant) name and its link numbers, which have the meaning and
        defaults of the options of the same name above.
      - The options O(allow_missing), O(testbed), O(host), O(docker_socket) and O(state)
        apply to every entry. The per-target options must not be given beside O(links).
      - All entries are checked and their containers found before anything changes; an
        entry that fails later does not stop the others, and the module then fails naming
        every participant that failed.
    type: list
    elements: dict
    suboptions:
      container:
        description: Name or ID of the Docker container. One of this and O(links[].netns).
        type: str
      netns:
        description: Name of a network namespace under C(/run/netns).
        type: str
      interface:
        description: The participant's interface inside its namespace.
        type: str
        default: eth0
      participant:
        description: Participant name; keys the results. Defaults to the container or netns.
        type: str
      up_rate_bps:
        description: Upload rate in bit/s, V(0) unshaped.
        type: int
        default: 0
      down_rate_bps:
        description: Download rate in bit/s, V(0) unshaped.
        type: int
        default: 0
      delay_ms:
        description: One-way delay in milliseconds.
        type: float
        default: 0
      jitter_ms:
        description: Random variation of the delay in milliseconds.
        type: float
        default: 0
      jitter_distribution:
        description: Distribution of the jitter.
        type: str
        choices: [normal, pareto, paretonormal, uniform]
        default: normal
      loss_pct:
        description: Share of packets dropped in each direction, in percent.
        type: float
        default: 0
      loss_correlation_pct:
        description: How much each loss decision depends on the previous one, in percent.
        type: float
        default: 0
      duplicate_pct:
        description: Share of packets sent twice, in percent.
        type: float
        default: 0
      corrupt_pct:
        description: Share of packets with a flipped bit, in percent.
        type: float
        default: 0
      reorder_pct:
        description: Share of packets sent at once, ahead of delayed ones.
        type: float
        default: 0
  allow_missing:
    description:
      - Settings that may be left out when this host's kernel lacks what they need (netem
        for delay and impairments, ifb for the download). Left-out settings are returned in
        RV(not_applied). A needed setting that is not listed makes the module fail.
    type: list
    elements: str
    default: []
    choices: [up_rate_bps, down_rate_bps, delay_ms, jitter_ms, jitter_distribution, loss_pct,
              loss_correlation_pct, duplicate_pct, corrupt_pct, reorder_pct]
  testbed:
    description:
      - Name of the testbed the participant belongs to. When O(container) is missing, the
        error lists the containers labelled C(flbed.testbed=<testbed>).
    type: str
  participant:
    description: Participant name used in messages. Defaults to the container or netns name.
    type: str
  host:
    description: Host name used in messages. Defaults to the managed host's own name.
    type: str
  docker_socket:
    description: Path of the Docker engine's unix socket.
    type: path
    default: /var/run/docker.sock
  state:
    description:
      - V(present) applies the link; V(absent) leaves the interface with the kernel's
        default qdiscs and removes the ifb device.
      - V(absent) on a container that does not exist succeeds without change.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    details: Reads the current state and reports the commands that would run. A container
      that does not exist or run yet (one that the same check run would create) is planned
      as a fresh one, its namespace written C(<pid of NAME>) in the commands.
  diff_mode:
    support: full
    details: The diff shows both directions before and after, as rate and netem numbers;
      in the batch form one diff per participant.
  idempotent:
    support: full
    details: A second run with the same values runs no command and reports no change.
notes:
  - Needs root on the managed host, C(tc) and C(ip) (iproute2) and C(nsenter) and
    C(unshare) (util-linux). The container needs no capability.
  - The jitter distribution cannot be read back from the kernel, so a change of
    O(jitter_distribution) alone is not detected; change any other value, or apply
    V(absent) first.
  - Kernel support for netem and ifb is probed in a throwaway network namespace, also in
    check mode, because a module that is merely not loaded yet still works.
  - The ifb device lives in the participant's namespace and disappears with the container.
  - Runs C(sh) inside each namespace (only the network namespace is entered, so it is the
    host's shell and the host's C(tc) and C(ip)).
  - TBF burst is one 250 Hz timer tick of traffic plus 1600 bytes; its queue holds 100 ms of
    traffic and at least four full frames. TCP goodput measured through it sits about 4 %
    under the configured rate, which is the TCP/IP and Ethernet header share of each frame.
requirements:
  - iproute2
  - util-linux
"""

EXAMPLES = r"""
- name: Shape the phone client like a 4G smartphone
  flbed_link:
    container: fl-demo-client-1
    testbed: demo
    participant: client_1
    up_rate_bps: 5000000
    down_rate_bps: 20000000
    delay_ms: 50
    loss_pct: 1

- name: Shape an IoT client, accepting a kernel without netem
  flbed_link:
    container: fl-demo-client-2
    testbed: demo
    participant: client_2
    up_rate_bps: 128000
    down_rate_bps: 384000
    delay_ms: 300
    loss_pct: 5
    allow_missing: [delay_ms, loss_pct]
  register: client_2_link

- name: Shape every participant of this host in one run
  flbed_link:
    testbed: demo
    allow_missing: [delay_ms, loss_pct]
    links:
      - {container: fl-demo-server, participant: server, up_rate_bps: 1000000000,
         down_rate_bps: 1000000000, delay_ms: 1}
      - {container: fl-demo-client-1, participant: client_1, up_rate_bps: 5000000,
         down_rate_bps: 20000000, delay_ms: 50, loss_pct: 1}
  register: demo_links

- name: Remove the shaping of a network namespace used in a test
  flbed_link:
    netns: flbedtest-client
    state: absent
"""

RETURN = r"""
commands:
  description:
    - The commands run, or in check mode the commands that would run, one a line.
    - In the batch form the commands of all participants, in the order of O(links).
    - The commands of one namespace run through C(tc -batch) and C(ip -batch), so tc's
      error names a line of its batch; the message lists the commands.
  returned: always
  type: list
  elements: str
  sample:
    - "nsenter -t 4242 -n tc qdisc add dev eth0 root handle 1: tbf rate 5000000bit
      burst 4100b limit 66600b"
not_applied:
  description:
    - Settings left out because the kernel lacks their support (see O(allow_missing)).
    - In the batch form a dict from participant name to that list.
  returned: always
  type: raw
  sample: [delay_ms, loss_pct]
link:
  description: Both directions as the kernel reports them after the run (the plan in check
    mode). A direction is V(unshaped) or a dict of rate and netem numbers.
  returned: success, when O(links) is not given
  type: dict
  sample:
    upload: {rate_bps: 5000000, burst_bytes: 4100, queue_limit_bytes: 66600}
    download: unshaped
participant:
  description: The participant name used in messages.
  returned: when O(links) is not given
  type: str
links:
  description: One result per entry of O(links), in its order.
  returned: when O(links) is given
  type: list
  elements: dict
  contains:
    participant: {description: The participant name., type: str}
    changed: {description: Whether its link changed (would change in check mode)., type: bool}
    commands: {description: Its commands, as RV(commands)., type: list, elements: str}
    not_applied: {description: Its left-out settings., type: list, elements: str}
    link: {description: Its link, as RV(link)., type: dict}
  sample:
    - {participant: client_1, changed: true, not_applied: [delay_ms],
       commands: ["nsenter -t 4242 -n tc qdisc add dev eth0 root handle 1: tbf ..."],
       link: {upload: {rate_bps: 5000000}, download: {rate_bps: 20000000}}}
"""

import os
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_docker import DockerAPI, DockerError
from ansible.module_utils import flbed_tc

NETNS_DIR = "/run/netns"
PROBE_DELAY = ["delay", "1ms"]
# Options that describe one target; in the batch form each entry of links has them.
TARGET_OPTIONS = ("container", "netns", "interface", "participant") + flbed_tc.LINK_SETTINGS
# Namespaces worked on at once. The work is process start-up, not traffic, so a few workers
# fill a small host's cores without drowning a Raspberry Pi.
NAMESPACE_WORKERS = 4
C_LOCALE = dict(os.environ, LC_ALL="C")


class TargetError(Exception):
    """Something went wrong with one target; the message is for the user."""


def describe_containers(containers):
    """'a (running), b (exited)' for the /containers/json entries of a testbed."""
    names = []
    for entry in containers:
        name = (entry.get("Names") or ["?"])[0].lstrip("/")
        names.append("%s (%s)" % (name, entry.get("State", "unknown")))
    return ", ".join(sorted(names)) or "none"


def run_in_namespace(prefix, script):
    """Run a shell script inside a namespace: (exit code, stdout, stderr).

    subprocess, not AnsibleModule.run_command: this runs in worker threads.
    """
    proc = subprocess.run(prefix + ["sh", "-c", script], capture_output=True, text=True,
                          env=C_LOCALE, check=False)
    return proc.returncode, proc.stdout, proc.stderr


class Target:
    """One participant's link: where it lives, what it has, what it gets."""

    def __init__(self, spec):
        self.spec = spec
        self.participant = spec["participant"] or spec["container"] or spec["netns"]
        self.dev = spec["interface"]
        self.ifb = flbed_tc.ifb_name(self.dev)
        self.prefix = None          # nsenter argv; stays None when the target does not exist
        self.pending = False        # check mode: not there yet, planned as a fresh container
        self.ifb_missing = None     # why the kernel cannot make an ifb device, if it cannot
        self.not_applied = []
        self.wanted = None          # None for state=absent
        self.before = None
        self.commands = []
        self.view = flbed_tc.link_view(None, None)
        self.error = None

    def link(self):
        return {name: self.spec[name] for name in flbed_tc.LINK_SETTINGS}

    def read_state(self):
        code, out, err = run_in_namespace(self.prefix, flbed_tc.state_script(self.dev))
        return self.state_from(code, out, err)

    def state_from(self, code, out, err):
        parts = flbed_tc.split_state_output(out)
        names = flbed_tc.interface_names(parts)
        if names and self.dev not in names:
            raise TargetError("interface %r does not exist in the participant's namespace; "
                              "interfaces there: %s" % (self.dev, ", ".join(sorted(names))))
        try:
            return flbed_tc.state_from_parts(parts, self.dev, self.ifb)
        except ValueError as exc:
            raise TargetError("cannot read the link state with %s (exit %d): %s: %s"
                              % (" ".join(self.prefix), code, exc, err.strip()))

    def apply(self):
        """Run the planned commands and re-read the state, in one process tree."""
        script = flbed_tc.batch_script(self.commands) + flbed_tc.state_script(self.dev)
        code, out, err = run_in_namespace(self.prefix, script)
        if flbed_tc.STATE_MARK not in out:
            raise TargetError("applying failed (exit %d): %s; the commands were: %s"
                              % (code, err.strip(), "; ".join(self.command_lines())))
        return self.state_from(code, out, err)

    def verify(self, after):
        """Compare with the re-read: tc can accept a value that the kernel then rounds away."""
        for direction in ("upload", "download"):
            if not flbed_tc.direction_matches(self.wanted[direction], after[direction]):
                raise TargetError("after applying, the kernel reports %s %s instead of %s"
                                  % (direction, flbed_tc.direction_view(after[direction]),
                                     flbed_tc.direction_view(self.wanted[direction])))

    def command_lines(self):
        return flbed_tc.format_commands([self.prefix + argv for argv in self.commands])

    def result(self, diff):
        result = {"participant": self.participant, "changed": bool(self.commands),
                  "commands": self.command_lines() if self.prefix else [],
                  "not_applied": self.not_applied, "link": self.view}
        if diff:
            before = self.before or {"upload": None, "download": None}
            result["diff"] = {"before": flbed_tc.link_view(before["upload"], before["download"]),
                              "after": self.view}
        return result


class LinkManager:
    """Reads, plans and applies the links of one or many targets on this host."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.host = self.params["host"] or socket.gethostname()
        self.batch = self.params["links"] is not None
        specs = self.params["links"] if self.batch else [
            {name: self.params[name] for name in TARGET_OPTIONS}]
        self.targets = [Target(spec) for spec in specs]
        self.support = {}           # kernel probe -> complaint or None, probed once per run
        self.docker = None

    # -------------------------------------------------------------- failing

    def where(self, target):
        return "host %r, participant %r" % (self.host, target.participant)

    def fail_on_errors(self):
        failed = [t for t in self.targets if t.error]
        if not failed:
            return
        lines = ["%s: %s" % (self.where(t), t.error) for t in failed]
        if self.batch:
            lines.insert(0, "%d of %d links failed:" % (len(failed), len(self.targets)))
        self.module.fail_json(msg="\n".join(lines), **self.results())

    def each(self, step, parallel=False, then_fail=True):
        """Run step(target) for each target that has no error yet and record TargetErrors;
        then fail naming every target that has one, unless then_fail is False."""
        todo = [t for t in self.targets if not t.error]

        def guarded(target):
            try:
                step(target)
            except TargetError as exc:
                target.error = str(exc)

        if parallel and len(todo) > 1:
            with ThreadPoolExecutor(max_workers=NAMESPACE_WORKERS) as pool:
                list(pool.map(guarded, todo))
        else:
            for target in todo:
                guarded(target)
        if then_fail:
            self.fail_on_errors()

    # -------------------------------------------------------------- checking the input

    def check_input(self):
        if self.batch:
            set_above = [name for name in TARGET_OPTIONS
                         if self.params[name] not in (None, self.module.argument_spec[name]
                                                      .get("default"))]
            if set_above:
                self.module.fail_json(msg="with links, give %s in each entry of links, not "
                                      "beside it" % ", ".join(set_above))
            self.check_unique()
        if self.params["state"] == "present":
            self.each(self.check_link, then_fail=False)   # reported with the resolve errors

    def check_unique(self):
        seen_targets, seen_names = set(), set()
        for target in self.targets:
            key = (target.spec["container"], target.spec["netns"], target.dev)
            for seen, value, what in ((seen_targets, key, "interface"),
                                      (seen_names, target.participant, "participant name")):
                if value in seen:
                    target.error = "its %s is listed twice in links" % what
                seen.add(value)
        self.fail_on_errors()

    @staticmethod
    def check_link(target):
        errors = flbed_tc.validate_link(target.link())
        if errors:
            raise TargetError("; ".join(errors))

    # -------------------------------------------------------------- targets

    def resolve(self, target):
        """Set the target's nsenter prefix; leave it None when the target does not exist."""
        if target.spec["netns"]:
            self.resolve_netns(target, target.spec["netns"])
        else:
            self.resolve_container(target, target.spec["container"])

    def resolve_netns(self, target, name):
        path = os.path.join(NETNS_DIR, name)
        if os.path.exists(path):
            target.prefix = ["nsenter", "--net=" + path]
        elif self.params["state"] == "present":
            existing = sorted(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else []
            raise TargetError("network namespace %r does not exist; namespaces here: %s"
                              % (name, ", ".join(existing) or "none"))

    def resolve_container(self, target, name):
        if self.docker is None:
            self.docker = DockerAPI(socket_path=self.params["docker_socket"])
        try:
            info = self.docker.inspect_container(name)
        except DockerError as exc:
            raise TargetError("cannot inspect container %r: %s" % (name, exc))
        state = (info or {}).get("State") or {}
        running = bool(state.get("Running") and state.get("Pid"))
        if not running and self.params["state"] == "present" and self.module.check_mode:
            # In a check run the container is still to be created or started.
            target.prefix, target.pending = ["nsenter", "-t", "<pid of %s>" % name, "-n"], True
            return
        if info is None and self.params["state"] == "present":
            raise TargetError(self.missing_container_message(name))
        if info is None:
            return
        if running:
            target.prefix = ["nsenter", "-t", str(state["Pid"]), "-n"]
        elif self.params["state"] == "present":
            raise TargetError("container %r is not running (status %r); its network "
                              "namespace exists only while it runs"
                              % (name, state.get("Status")))

    def missing_container_message(self, name):
        testbed = self.params["testbed"]
        if not testbed:
            return ("container %r does not exist (set testbed to list the testbed's "
                    "containers)" % name)
        existing = self.docker.list_containers(labels={"flbed.testbed": testbed})
        return ("container %r does not exist; containers of testbed %r (label "
                "flbed.testbed=%s): %s" % (name, testbed, testbed,
                                            describe_containers(existing)))

    # -------------------------------------------------------------- kernel support

    def probe(self, argv):
        """Run argv in a throwaway network namespace, once per module run; return tc's
        complaint or None."""
        key = tuple(argv)
        if key not in self.support:
            rc, out, err = self.module.run_command(["unshare", "--net"] + argv)
            self.support[key] = None if rc == 0 else (err or out).strip() or "exit %d" % rc
        return self.support[key]

    def missing_support(self, target, link):
        """{setting: reason} for each used setting this kernel cannot apply."""
        missing = {}
        used_netem = flbed_tc.netem_settings_set(link)
        if used_netem:
            netem_probe = ["tc", "qdisc", "add", "dev", "lo", "root", "netem"]
            reason = self.probe(netem_probe + PROBE_DELAY)
            if reason:
                reason = "the kernel has no netem qdisc (sch_netem): %s" % reason
                missing.update((name, reason) for name in used_netem)
            elif "jitter_distribution" in used_netem and \
                    link["jitter_distribution"] != "uniform":
                reason = self.probe(netem_probe + PROBE_DELAY + [
                    "1ms", "distribution", link["jitter_distribution"]])
                if reason:
                    missing["jitter_distribution"] = "tc has no %r table: %s" % (
                        link["jitter_distribution"], reason)
        if link["down_rate_bps"] or used_netem:
            reason = self.probe(["ip", "link", "add", "flbedprobe0", "type", "ifb"])
            if reason:
                target.ifb_missing = "the kernel has no ifb device: %s" % reason
        return missing

    def decide_skips(self, target):
        """Plan what the target gets, leaving out what the kernel cannot do; fails unless
        allow_missing lists every left-out setting.

        Without netem the netem settings go in both directions. Without ifb the whole
        download goes, so the download rate and the download half of each netem setting
        are not applied.
        """
        link = target.link()
        netem_missing = self.missing_support(target, link)
        missing = dict(netem_missing)
        not_applied = sorted(netem_missing)
        if target.ifb_missing:
            download_settings = (["down_rate_bps"] if link["down_rate_bps"] else []) + [
                n for n in flbed_tc.netem_settings_set(link) if n not in netem_missing]
            for name in download_settings:
                missing[name] = target.ifb_missing
                not_applied.append(name if name == "down_rate_bps" else name + " (download)")

        refused = sorted(n for n in missing if n not in self.params["allow_missing"])
        if refused:
            raise TargetError(
                "cannot apply %s: %s. Load the kernel module, or list %s in allow_missing to "
                "run without %s" % (", ".join("%s=%r" % (n, link[n]) for n in refused),
                                    missing[refused[0]], refused,
                                    "it" if len(refused) == 1 else "them"))
        target.not_applied = not_applied
        target.wanted = flbed_tc.wanted_link(link, skip=sorted(netem_missing),
                                             download_possible=not target.ifb_missing)

    # -------------------------------------------------------------- steps

    def read_before(self, target):
        if target.pending:
            target.before = flbed_tc.read_state([], [], [], [], target.ifb)
        elif target.prefix is not None:
            target.before = target.read_state()

    def plan(self, target):
        if target.prefix is None:
            return
        if target.wanted is None:
            target.commands = flbed_tc.plan_absent(target.before, target.dev, target.ifb)
            return
        target.commands = flbed_tc.plan_present(target.wanted, target.before, target.dev,
                                                target.ifb)
        target.view = flbed_tc.link_view(target.wanted["upload"], target.wanted["download"])

    def apply(self, target):
        """Change the kernel; only outside check mode, and only where the plan differs."""
        if not target.commands:
            if target.prefix is not None:
                target.view = flbed_tc.link_view(target.before["upload"],
                                                 target.before["download"])
            return
        after = target.apply()
        target.view = flbed_tc.link_view(after["upload"], after["download"])
        if target.wanted is not None:
            target.verify(after)

    def run(self):
        self.check_input()
        self.each(self.resolve)
        if self.params["state"] == "present":
            self.each(self.decide_skips)
        self.each(self.read_before, parallel=True)
        self.each(self.plan)
        if not self.module.check_mode:
            self.each(self.apply, parallel=True)

    # -------------------------------------------------------------- reporting

    def results(self):
        diff = bool(self.module._diff)
        per_target = [t.result(diff) for t in self.targets]
        if not self.batch:
            result = per_target[0]
            if self.targets[0].prefix is None and self.params["state"] == "absent":
                result["msg"] = "target does not exist, so it has no shaping"
            return result
        results = {"changed": any(r["changed"] for r in per_target),
                   "commands": [line for r in per_target for line in r["commands"]],
                   "not_applied": {r["participant"]: r["not_applied"] for r in per_target},
                   "links": per_target}
        if diff:
            results["diff"] = [dict(r.pop("diff"), before_header=r["participant"],
                                    after_header=r["participant"]) for r in per_target]
        return results


def argument_spec():
    percent = dict(type="float", default=0)
    target = dict(
        container=dict(type="str"),
        netns=dict(type="str"),
        interface=dict(type="str", default="eth0"),
        participant=dict(type="str"),
        up_rate_bps=dict(type="int", default=0),
        down_rate_bps=dict(type="int", default=0),
        delay_ms=dict(type="float", default=0),
        jitter_ms=dict(type="float", default=0),
        jitter_distribution=dict(type="str", default="normal",
                                 choices=list(flbed_tc.JITTER_DISTRIBUTIONS)),
        loss_pct=percent, loss_correlation_pct=percent, duplicate_pct=percent,
        corrupt_pct=percent, reorder_pct=percent,
    )
    return dict(
        target,
        links=dict(type="list", elements="dict", options=dict(target),
                   mutually_exclusive=[("container", "netns")],
                   required_one_of=[("container", "netns")]),
        allow_missing=dict(type="list", elements="str", default=[],
                           choices=list(flbed_tc.LINK_SETTINGS)),
        testbed=dict(type="str"),
        host=dict(type="str"),
        docker_socket=dict(type="path", default="/var/run/docker.sock"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("container", "netns", "links")],
        required_one_of=[("container", "netns", "links")],
        supports_check_mode=True,
    )
    manager = LinkManager(module)
    manager.run()
    module.exit_json(**manager.results())


if __name__ == "__main__":
    main()
