#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: flbed_link
short_description: Shape one testbed participant's network link with Linux traffic control
description:
  - Gives one participant (a container, or a named network namespace) the upload and download
    rate, delay, jitter, loss, duplication, corruption and reordering of the device it stands
    for.
  - Works from the host, inside the participant's network namespace (C(nsenter)), so the
    container needs no capability and the code inside it cannot lift its own limits.
  - Upload is the egress of O(interface), shaped by a TBF qdisc at its root. Download is its
    ingress, redirected by a C(u32) match-all filter with a C(mirred) action to an ifb device
    created in the same namespace (C(ifb-flbed) for C(eth0)), whose egress is shaped the same
    way. Delay, jitter and the packet impairments go into a netem qdisc below the TBF.
  - Reads the current qdiscs with C(tc -j), compares them with what is wanted and changes
    only a direction that differs, rebuilding that direction's qdisc tree whole.
  - All numbers are plain (bit/s, milliseconds, percent). Unit strings are converted by the
    flbed planner before they reach this module.
version_added: 0.1.0
author:
  - flbed contributors
options:
  container:
    description:
      - Name or ID of the Docker container to shape. Its main process gives the namespace.
      - Exactly one of O(container) and O(netns) is required.
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
    details: Reads the current state and reports the commands that would run.
  diff_mode:
    support: full
    details: The diff shows both directions before and after, as rate and netem numbers.
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

- name: Remove the shaping of a network namespace used in a test
  flbed_link:
    netns: flbedtest-client
    state: absent
"""

RETURN = r"""
commands:
  description: The commands run, or in check mode the commands that would run, one a line.
  returned: always
  type: list
  elements: str
  sample:
    - "nsenter -t 4242 -n tc qdisc add dev eth0 root handle 1: tbf rate 5000000bit
      burst 4100b limit 66600b"
not_applied:
  description: Settings left out because the kernel lacks their support (see O(allow_missing)).
  returned: always
  type: list
  elements: str
  sample: [delay_ms, loss_pct]
link:
  description: Both directions as the kernel reports them after the run (the plan in check
    mode). A direction is V(unshaped) or a dict of rate and netem numbers.
  returned: success
  type: dict
  sample:
    upload: {rate_bps: 5000000, burst_bytes: 4100, queue_limit_bytes: 66600}
    download: unshaped
participant:
  description: The participant name used in messages.
  returned: always
  type: str
"""

import os
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_docker import DockerAPI, DockerError
from ansible.module_utils import flbed_tc

NETNS_DIR = "/run/netns"
PROBE_DELAY = ["delay", "1ms"]


def describe_containers(containers):
    """'a (running), b (exited)' for the /containers/json entries of a testbed."""
    names = []
    for entry in containers:
        name = (entry.get("Names") or ["?"])[0].lstrip("/")
        names.append("%s (%s)" % (name, entry.get("State", "unknown")))
    return ", ".join(sorted(names)) or "none"


class LinkManager:
    """Reads, plans and applies one participant's link."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.host = self.params["host"] or socket.gethostname()
        self.participant = (self.params["participant"] or self.params["container"]
                            or self.params["netns"])
        self.dev = self.params["interface"]
        self.ifb = flbed_tc.ifb_name(self.dev)
        self.prefix = None
        self.ifb_missing = None
        self.results = {"changed": False, "commands": [], "not_applied": [],
                        "participant": self.participant}

    # -------------------------------------------------------------- helpers

    def fail(self, msg, **extra):
        self.results.update(extra)
        self.module.fail_json(msg="host %r, participant %r: %s"
                              % (self.host, self.participant, msg), **self.results)

    def run(self, argv, check=True):
        rc, out, err = self.module.run_command(self.prefix + argv)
        if check and rc != 0:
            self.fail("command failed (exit %d): %s: %s"
                      % (rc, " ".join(self.prefix + argv), (err or out).strip()))
        return rc, out, err

    def read_json(self, argv):
        _rc, out, _err = self.run(argv)
        try:
            return self.module.from_json(out) if out.strip() else []
        except ValueError:
            self.fail("could not read the JSON of %s: %r" % (" ".join(argv), out[:200]))

    # -------------------------------------------------------------- target

    def resolve_target(self):
        """Set the nsenter prefix; return False when the target does not exist."""
        if self.params["netns"]:
            return self._resolve_netns(self.params["netns"])
        return self._resolve_container(self.params["container"])

    def _resolve_netns(self, name):
        path = os.path.join(NETNS_DIR, name)
        if not os.path.exists(path):
            if self.params["state"] == "absent":
                return False
            existing = sorted(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else []
            self.fail("network namespace %r does not exist; namespaces here: %s"
                      % (name, ", ".join(existing) or "none"))
        self.prefix = ["nsenter", "--net=" + path]
        return True

    def _resolve_container(self, name):
        api = DockerAPI(socket_path=self.params["docker_socket"])
        try:
            info = api.inspect_container(name)
            if info is None and self.params["state"] == "present":
                self._fail_missing_container(api, name)
        except DockerError as exc:
            self.fail("cannot inspect container %r: %s" % (name, exc))
        if info is None:
            return False
        state = info.get("State") or {}
        if not state.get("Running") or not state.get("Pid"):
            if self.params["state"] == "absent":
                return False
            self.fail("container %r is not running (status %r); its network namespace "
                      "exists only while it runs" % (name, state.get("Status")))
        self.prefix = ["nsenter", "-t", str(state["Pid"]), "-n"]
        return True

    def _fail_missing_container(self, api, name):
        testbed = self.params["testbed"]
        if not testbed:
            self.fail("container %r does not exist (set testbed to list the testbed's "
                      "containers)" % name)
        existing = api.list_containers(labels={"flbed.testbed": testbed})
        self.fail("container %r does not exist; containers of testbed %r (label "
                  "flbed.testbed=%s): %s" % (name, testbed, testbed,
                                              describe_containers(existing)))

    def check_interface(self, links):
        names = [link.get("ifname") for link in links]
        if self.dev not in names:
            self.fail("interface %r does not exist in the participant's namespace; "
                      "interfaces there: %s" % (self.dev, ", ".join(sorted(names))))

    # -------------------------------------------------------------- kernel support

    def probe(self, argv):
        """Run argv in a throwaway network namespace; return tc's complaint or None."""
        rc, out, err = self.module.run_command(["unshare", "--net"] + argv)
        return None if rc == 0 else (err or out).strip() or "exit %d" % rc

    def missing_support(self, link):
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
        needs_download = link["down_rate_bps"] or used_netem
        if needs_download:
            reason = self.probe(["ip", "link", "add", "flbedprobe0", "type", "ifb"])
            if reason:
                self.ifb_missing = "the kernel has no ifb device: %s" % reason
        return missing

    def decide_skips(self, link):
        """Settings to leave out; fails unless allow_missing lists every one of them.

        Without netem the netem settings go in both directions. Without ifb the whole
        download goes, so the download rate and the download half of each netem setting
        are not applied.
        """
        netem_missing = self.missing_support(link)
        missing = dict(netem_missing)
        not_applied = sorted(netem_missing)
        if self.ifb_missing:
            download_settings = (["down_rate_bps"] if link["down_rate_bps"] else []) + [
                n for n in flbed_tc.netem_settings_set(link) if n not in netem_missing]
            for name in download_settings:
                missing[name] = self.ifb_missing
                not_applied.append(name if name == "down_rate_bps" else name + " (download)")

        refused = sorted(n for n in missing if n not in self.params["allow_missing"])
        if refused:
            self.fail("cannot apply %s: %s. Load the kernel module, or list %s in "
                      "allow_missing to run without %s"
                      % (", ".join("%s=%r" % (n, link[n]) for n in refused),
                         missing[refused[0]], refused, "it" if len(refused) == 1 else "them"))
        self.results["not_applied"] = not_applied
        return sorted(netem_missing)

    # -------------------------------------------------------------- state

    def read_state(self):
        links = self.read_json(["ip", "-j", "link", "show"])
        self.check_interface(links)
        dev_qdiscs = self.read_json(["tc", "-j", "qdisc", "show", "dev", self.dev])
        dev_filters = self.read_json(["tc", "-j", "filter", "show", "dev", self.dev,
                                      "ingress"])
        ifb_qdiscs = []
        if any(link.get("ifname") == self.ifb for link in links):
            ifb_qdiscs = self.read_json(["tc", "-j", "qdisc", "show", "dev", self.ifb])
        return flbed_tc.read_state(dev_qdiscs, dev_filters, links, ifb_qdiscs, self.ifb)

    def apply(self, before, commands, wanted_view):
        self.results["commands"] = flbed_tc.format_commands(
            [self.prefix + argv for argv in commands])
        self.results["changed"] = bool(commands)
        after, after_view = None, wanted_view
        if commands and not self.module.check_mode:
            for argv in commands:
                self.run(argv)
            after = self.read_state()
            after_view = flbed_tc.link_view(after["upload"], after["download"])
        self.results["link"] = after_view
        if self.module._diff:
            self.results["diff"] = {
                "before": flbed_tc.link_view(before["upload"], before["download"]),
                "after": after_view}
        return after

    # -------------------------------------------------------------- states

    def link_params(self):
        return {name: self.params[name] for name in flbed_tc.LINK_SETTINGS}

    def present(self):
        link = self.link_params()
        errors = flbed_tc.validate_link(link)
        if errors:
            self.fail("; ".join(errors))
        self.resolve_target()

        skip = self.decide_skips(link)
        wanted = flbed_tc.wanted_link(link, skip=skip,
                                      download_possible=not self.ifb_missing)
        before = self.read_state()
        commands = flbed_tc.plan_present(wanted, before, self.dev, self.ifb)
        wanted_view = flbed_tc.link_view(wanted["upload"], wanted["download"])
        after = self.apply(before, commands, wanted_view)
        if after is not None:
            self.verify(wanted, after)

    def verify(self, wanted, after):
        """Compare with a re-read: tc can accept a value that the kernel then rounds away."""
        for direction in ("upload", "download"):
            if not flbed_tc.direction_matches(wanted[direction], after[direction]):
                self.fail("after applying, the kernel reports %s %s instead of %s"
                          % (direction, flbed_tc.direction_view(after[direction]),
                             flbed_tc.direction_view(wanted[direction])))

    def absent(self):
        if not self.resolve_target():
            self.results["link"] = flbed_tc.link_view(None, None)
            self.results["msg"] = "target does not exist, so it has no shaping"
            return
        before = self.read_state()
        commands = flbed_tc.plan_absent(before, self.dev, self.ifb)
        self.apply(before, commands, flbed_tc.link_view(None, None))


def argument_spec():
    percent = dict(type="float", default=0)
    return dict(
        container=dict(type="str"),
        netns=dict(type="str"),
        interface=dict(type="str", default="eth0"),
        up_rate_bps=dict(type="int", default=0),
        down_rate_bps=dict(type="int", default=0),
        delay_ms=dict(type="float", default=0),
        jitter_ms=dict(type="float", default=0),
        jitter_distribution=dict(type="str", default="normal",
                                 choices=list(flbed_tc.JITTER_DISTRIBUTIONS)),
        loss_pct=percent, loss_correlation_pct=percent, duplicate_pct=percent,
        corrupt_pct=percent, reorder_pct=percent,
        allow_missing=dict(type="list", elements="str", default=[],
                           choices=list(flbed_tc.LINK_SETTINGS)),
        testbed=dict(type="str"),
        participant=dict(type="str"),
        host=dict(type="str"),
        docker_socket=dict(type="path", default="/var/run/docker.sock"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("container", "netns")],
        required_one_of=[("container", "netns")],
        supports_check_mode=True,
    )
    manager = LinkManager(module)
    if module.params["state"] == "present":
        manager.present()
    else:
        manager.absent()
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
