#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: flbed_link_probe
short_description: Measure what each testbed participant's shaped link really carries
description:
  - Measures, for every client container of a testbed on this host, the TCP goodput it
    reaches to the server (upload, client sending), from the server (download), and the
    round-trip time of a TCP handshake to the server.
  - Runs the host's C(iperf3) and the host's Python inside the containers' network
    namespaces (C(nsenter -n)), so the containers need nothing installed and no capability,
    and what is measured is the participants' real path over the testbed network.
  - An iperf3 server runs in the server container's namespace, bound to its address on the
    testbed network. Clients are measured one after another, so they do not share the
    server's link.
  - Also reports the shaping the kernel holds for each participant (rate of each direction
    and netem delay, read with C(tc -j)), so a caller can set expectation against
    measurement without another source.
  - Containers are found by their labels C(flbed.testbed), C(flbed.role) and
    C(flbed.participant).
version_added: 0.1.0
author:
  - flbed contributors
options:
  testbed:
    description: Name of the testbed (label C(flbed.testbed)) whose participants to measure.
    type: str
    required: true
  iperf_server:
    description:
      - What to do with the iperf3 server in the server container's namespace.
      - V(temporary) starts it, measures the clients on this host and stops it; for a
        testbed whose server and clients share this host.
      - V(started) starts it (or keeps it running) and measures nothing; the result gives
        its RV(server) address for the other hosts. V(stopped) stops it, measuring nothing.
        On a host without the server container both do nothing.
      - V(running) measures the clients on this host against O(server_address), where a
        V(started) run left a server.
    type: str
    choices: [temporary, started, running, stopped]
    default: temporary
  server_address:
    description:
      - Address of the iperf3 server. Required with O(iperf_server=running); otherwise the
        server container's address on O(network).
    type: str
  network:
    description:
      - Docker network of the testbed, whose address of the server is used. Defaults to
        C(flbed-<testbed>), or the server container's only network.
    type: str
  participants:
    description: Client participants to measure (label C(flbed.participant)); default all.
    type: list
    elements: str
  port:
    description: TCP port of the iperf3 server.
    type: int
    default: 5399
  duration_s:
    description: Seconds each iperf3 run sends, after the omitted start.
    type: int
    default: 3
  omit_s:
    description: Seconds at the start of each iperf3 run left out (TCP slow start).
    type: int
    default: 1
  rtt_port:
    description:
      - Port the handshake round trip is timed against on the server's address. A closed
        port answers with a reset after one round trip just as an open one answers with
        SYN-ACK, so any port works; the default is the discard port, closed in containers.
    type: int
    default: 9
  rtt_samples:
    description: Handshakes timed per client; the median is reported.
    type: int
    default: 5
  iperf3_path:
    description: The host's iperf3 binary.
    type: path
    default: iperf3
  docker_socket:
    description: Path of the Docker engine's unix socket.
    type: path
    default: /var/run/docker.sock
attributes:
  check_mode:
    support: partial
    details:
      - V(temporary) and V(running) measure in check mode too; they leave nothing behind.
      - V(started) and V(stopped) report what they would do and do nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Measuring changes nothing; V(started) on a running server reports no change.
notes:
  - Needs root on the managed host, iperf3 (Debian package iperf3) and C(nsenter).
  - TCP goodput sits about 4.4 % under a TBF rate at MTU 1500 (1448 payload bytes per
    1514-byte frame); the measurements are reported raw, judging them is the caller's.
  - What a client measures is limited by both ends, its upload by the server's download
    and the other way round.
  - Measuring takes about O(duration_s) + O(omit_s) seconds twice per client, plus the
    handshakes.
requirements:
  - iperf3
  - util-linux
"""

EXAMPLES = r"""
- name: Measure every client of a one-host testbed
  flbed_link_probe:
    testbed: demo
  register: demo_probe

- name: Start the iperf3 server wherever the server container runs
  flbed_link_probe:
    testbed: demo
    iperf_server: started
  register: demo_probe_server

- name: Measure this host's clients against it, one host at a time
  flbed_link_probe:
    testbed: demo
    iperf_server: running
    server_address: "{{ server_address }}"
  throttle: 1
"""

RETURN = r"""
server:
  description: The server participant, when its container runs on this host.
  returned: when the server container is on this host
  type: dict
  contains:
    participant: {description: Its participant name., type: str}
    container: {description: Its container name., type: str}
    address: {description: Its address on the testbed network., type: str}
    created: {description: When its container was created (Docker's time stamp)., type: str}
    shaping: {description: Its shaping as the kernel holds it (see RV(measurements))., type: dict}
  sample:
    participant: server
    container: flbed-demo-server
    address: 172.18.0.2
    shaping: {up_rate_bps: 1000000000, down_rate_bps: 1000000000, up_delay_ms: 0,
              down_delay_ms: 0}
measurements:
  description: One entry per measured client, in participant order.
  returned: always
  type: list
  elements: dict
  contains:
    participant: {description: Its participant name., type: str}
    container: {description: Its container name., type: str}
    profile: {description: Its device profile (label C(flbed.profile))., type: str}
    shaping:
      description:
        - Its shaping as the kernel holds it. Rates in bit/s, V(0) unshaped; the netem
          delay of each direction in ms.
      type: dict
    upload_bps:
      description:
        - TCP goodput client to server in bit/s, as the server received it, the median of
          its whole one-second intervals after the omitted start (loss recovery at the start
          can shift bytes into the next interval; the median leaves that one out).
      type: float
    download_bps: {description: TCP goodput server to client, counted the same way., type: float}
    rtt_ms: {description: Median TCP handshake time to the server, idle link., type: float}
    upload_loaded_rtt_ms:
      description: The mean smoothed RTT the client's TCP saw while uploading (queueing).
      type: float
    upload_retransmits: {description: TCP retransmissions while uploading., type: int}
  sample:
    - participant: client-1
      container: flbed-demo-client-1
      profile: smartphone_low
      shaping: {up_rate_bps: 5000000, down_rate_bps: 20000000, up_delay_ms: 0,
                down_delay_ms: 0}
      upload_bps: 4781234.0
      download_bps: 19120345.0
      rtt_ms: 0.21
      upload_loaded_rtt_ms: 48.2
      upload_retransmits: 0
host:
  description: The managed host's name.
  returned: always
  type: str
"""

import json
import os
import re
import signal
import socket
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.flbed_docker import DockerAPI, DockerError
from ansible.module_utils import flbed_tc

PIDFILE_DIR = "/run"
START_WAIT_S = 10.0
# After each test the iperf3 server takes a moment to listen again; a client that connects
# in that gap is refused or told the server is busy, so it tries again.
CONNECT_ATTEMPTS = 30
CONNECT_RETRY_S = 0.2
RETRY_ERRORS = ("unable to connect", "server is busy")
# Receiver intervals shorter than this (the run's closing sliver) say nothing of the rate.
MIN_INTERVAL_S = 0.5

# Runs inside a client's namespace with the host's Python: times TCP handshakes.
RTT_SCRIPT = r"""
import socket, statistics, sys, time
address, port, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(samples):
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock.settimeout(5)
    started = time.perf_counter()
    try:
        sock.connect((address, port))
    except ConnectionRefusedError:
        pass
    except OSError as exc:
        sys.exit("no handshake with %s:%d: %s" % (address, port, exc))
    times.append((time.perf_counter() - started) * 1000)
    sock.close()
    time.sleep(0.05)
print(statistics.median(times))
"""


def natural_key(name):
    """client-2 before client-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def shaping_of(state):
    """The kernel's shaping of one participant, from flbed_tc.read_state(), in plain numbers."""
    shaping = {}
    for direction, prefix in (("upload", "up"), ("download", "down")):
        found = state[direction] or {}
        netem = found.get("netem") or {}
        shaping[prefix + "_rate_bps"] = int(found.get("rate_bps") or 0)
        shaping[prefix + "_delay_ms"] = float(netem.get("delay_ms") or 0)
        if "foreign" in found:
            shaping[prefix + "_foreign_qdisc"] = found["foreign"]
    return shaping


def receiver_rate_bps(report, reverse):
    """Goodput as the receiver counted it: the median of its one-second intervals after the
    omitted start, from the client's `iperf3 -J --get-server-output` report.

    Not the average over the run: after losses at the start, TCP holds out-of-order bytes
    until the retransmission fills the hole, then delivers them at once, so bytes sent in
    the omitted second can be counted in the next one. At a few Mbit/s and a 3 s run that
    put the average 15 % above the shaped rate; the median leaves that one interval out.
    The receiver often closes with a sliver of an interval (10-30 ms) whose rate is one
    burst; it is left out too, or with the high first interval it pulls the median of an
    even count up (a 5 mbit link measured 5 % above its steady 4.78 Mbit/s).
    """
    receiver = report if reverse else report.get("server_output_json") or {}
    rates = sorted(interval["sum"]["bits_per_second"]
                   for interval in receiver.get("intervals") or []
                   if not interval["sum"].get("omitted")
                   and interval["sum"].get("seconds", 1.0) >= MIN_INTERVAL_S)
    if not rates:
        raise ValueError("the report has no receiver intervals")
    middle = len(rates) // 2
    return rates[middle] if len(rates) % 2 else (rates[middle - 1] + rates[middle]) / 2.0


def sender_stream(report):
    streams = (report.get("end") or {}).get("streams") or [{}]
    return streams[0].get("sender") or {}


class Participant:
    """One container of the testbed, as far as probing needs it."""

    def __init__(self, info):
        labels = info["Config"].get("Labels") or {}
        self.container = info["Name"].lstrip("/")
        self.participant = labels.get("flbed.participant", self.container)
        self.role = labels.get("flbed.role", "")
        self.profile = labels.get("flbed.profile", "")
        self.pid = (info.get("State") or {}).get("Pid")
        self.running = bool((info.get("State") or {}).get("Running"))
        self.networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        self.created = info.get("Created")
        self.prefix = ["nsenter", "-t", str(self.pid), "-n"]


class ProbeManager:
    """Finds the testbed's containers on this host, runs the iperf3 server and measures."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.testbed = self.params["testbed"]
        self.host = socket.gethostname()
        self.results = {"changed": False, "measurements": [], "host": self.host}
        self.server, self.clients = self.find_participants()
        self.pidfile = os.path.join(PIDFILE_DIR, "flbed-probe-%s.pid" % self.testbed)

    # -------------------------------------------------------------- helpers

    def fail(self, msg, **extra):
        self.module.fail_json(msg="host %r, testbed %r: %s" % (self.host, self.testbed, msg),
                              **dict(self.results, **extra))

    def run(self, argv, what, data=None):
        rc, out, err = self.module.run_command(argv, data=data)
        if rc != 0:
            self.fail("%s failed (exit %d): %s: %s" % (what, rc, " ".join(argv),
                                                       (err or out).strip()[-500:]))
        return out

    # -------------------------------------------------------------- finding

    def find_participants(self):
        api = DockerAPI(socket_path=self.params["docker_socket"])
        try:
            listed = api.list_containers(labels={"flbed.testbed": self.testbed}, all=False)
            found = [Participant(api.inspect_container(entry["Id"])) for entry in listed]
        except DockerError as exc:
            self.fail("cannot list the testbed's containers: %s" % exc)
        found = [p for p in found if p.running and p.pid]
        server = next((p for p in found if p.role == "server"), None)
        clients = sorted((p for p in found if p.role == "client"),
                         key=lambda p: natural_key(p.participant))
        wanted = self.params["participants"]
        if wanted is not None:
            unknown = sorted(set(wanted) - {p.participant for p in clients})
            if unknown:
                self.fail("no running client container for %s; running clients here: %s"
                          % (", ".join(unknown),
                             ", ".join(p.participant for p in clients) or "none"))
            clients = [p for p in clients if p.participant in wanted]
        return server, clients

    def server_address(self):
        networks = self.server.networks
        name = self.params["network"] or "flbed-%s" % self.testbed
        if name not in networks and len(networks) == 1 and not self.params["network"]:
            name = next(iter(networks))
        address = (networks.get(name) or {}).get("IPAddress")
        if not address:
            self.fail("server container %r has no address on network %r; its networks: %s"
                      % (self.server.container, name, ", ".join(sorted(networks)) or "none"))
        return address

    def shaping(self, participant):
        out = self.run(participant.prefix + ["sh", "-c", flbed_tc.state_script("eth0")],
                       "reading the shaping of %r" % participant.participant)
        try:
            state = flbed_tc.state_from_parts(flbed_tc.split_state_output(out), "eth0",
                                              flbed_tc.ifb_name("eth0"))
        except ValueError as exc:
            self.fail("cannot read the shaping of %r: %s" % (participant.participant, exc))
        return shaping_of(state)

    # -------------------------------------------------------------- the iperf3 server

    def server_pid(self):
        """PID of our iperf3 server when it runs, else None."""
        try:
            with open(self.pidfile) as handle:
                pid = int(handle.read().strip("\x00 \n") or 0)
        except (OSError, ValueError):
            return None
        try:
            with open("/proc/%d/comm" % pid) as handle:
                return pid if handle.read().strip() == "iperf3" else None
        except OSError:
            return None

    def start_server(self, address):
        if self.server_pid():
            return False
        if not self.module.check_mode:
            self.run(self.server.prefix + [self.iperf3(), "-s", "-J", "-D", "-B", address, "-p",
                                           str(self.params["port"]), "--pidfile",
                                           self.pidfile], "starting the iperf3 server")
            self.wait_listening(address)
        return True

    def wait_listening(self, address):
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            rc, out, _err = self.module.run_command(
                self.server.prefix + ["ss", "-Hltn", "sport = :%d" % self.params["port"]])
            if rc == 0 and out.strip():
                return
            time.sleep(0.1)
        self.fail("the iperf3 server did not listen on %s:%d within %g s"
                  % (address, self.params["port"], START_WAIT_S))

    def stop_server(self):
        pid = self.server_pid()
        if pid is None:
            return False
        if not self.module.check_mode:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if self.server_pid() is None:
                    break
                time.sleep(0.1)
            if os.path.exists(self.pidfile):
                os.unlink(self.pidfile)
        return True

    def iperf3(self):
        path = self.module.get_bin_path(self.params["iperf3_path"])
        if path is None:
            self.fail("iperf3 (%r) is not installed on this host; install the Debian package "
                      "iperf3" % self.params["iperf3_path"])
        return path

    # -------------------------------------------------------------- measuring

    def iperf(self, client, address, reverse):
        argv = client.prefix + [self.iperf3(), "-c", address, "-p", str(self.params["port"]),
                                "-J", "-t", str(self.params["duration_s"]),
                                "-O", str(self.params["omit_s"]), "--get-server-output"]
        argv += ["-R"] if reverse else []
        what = "%s iperf3 of %r" % ("download" if reverse else "upload", client.participant)
        for _attempt in range(CONNECT_ATTEMPTS):
            rc, out, err = self.module.run_command(argv)
            try:
                report = json.loads(out)
            except ValueError:
                self.fail("%s printed no JSON (exit %d): %r %s" % (what, rc, out[:300], err))
            error = report.get("error") or ""
            if not any(text in error for text in RETRY_ERRORS):
                break
            time.sleep(CONNECT_RETRY_S)
        if error or rc != 0:
            self.fail("%s: %s" % (what, error or "exit %d" % rc))
        return report

    def rtt_ms(self, client, address):
        argv = client.prefix + [sys.executable, "-c", RTT_SCRIPT, address,
                                str(self.params["rtt_port"]), str(self.params["rtt_samples"])]
        out = self.run(argv, "timing handshakes of %r" % client.participant)
        return round(float(out.strip()), 3)

    def measure(self, client, address):
        upload = self.iperf(client, address, reverse=False)
        download = self.iperf(client, address, reverse=True)
        sender = sender_stream(upload)
        try:
            upload_bps = receiver_rate_bps(upload, reverse=False)
            download_bps = receiver_rate_bps(download, reverse=True)
        except (KeyError, ValueError) as exc:
            self.fail("cannot read iperf3's report of %r: %s" % (client.participant, exc))
        return {
            "participant": client.participant, "container": client.container,
            "profile": client.profile, "shaping": self.shaping(client),
            "upload_bps": round(upload_bps, 1),
            "download_bps": round(download_bps, 1),
            "rtt_ms": self.rtt_ms(client, address),
            "upload_loaded_rtt_ms": round(sender.get("mean_rtt", 0) / 1000.0, 3),
            "upload_retransmits": int(sender.get("retransmits", 0)),
        }

    def measure_all(self, address):
        self.results["measurements"] = [self.measure(c, address) for c in self.clients]

    # -------------------------------------------------------------- modes

    def describe_server(self, address):
        self.results["server"] = {"participant": self.server.participant,
                                  "container": self.server.container, "address": address,
                                  "created": self.server.created,
                                  "shaping": self.shaping(self.server)}

    def run_mode(self):
        mode = self.params["iperf_server"]
        if mode == "running":
            if not self.params["server_address"]:
                self.fail("iperf_server=running needs server_address, the address a "
                          "started server listens on")
            self.measure_all(self.params["server_address"])
            return
        if self.server is None:
            if mode == "temporary":
                self.fail("no running server container (labels flbed.testbed=%s, "
                          "flbed.role=server) on this host; for a testbed spread over "
                          "hosts use iperf_server=started, running and stopped"
                          % self.testbed)
            return
        address = self.params["server_address"] or self.server_address()
        self.describe_server(address)
        if mode == "stopped":
            self.results["changed"] = self.stop_server()
        elif mode == "started":
            self.results["changed"] = self.start_server(address)
        else:
            self.temporary(address)

    def temporary(self, address):
        """Start, measure, stop: nothing stays behind, so this also runs in check mode."""
        self.module.check_mode, check_mode = False, self.module.check_mode
        try:
            self.stop_server()      # one left by an interrupted run would hold the port
            self.start_server(address)
            self.measure_all(address)
        finally:
            self.stop_server()
            self.module.check_mode = check_mode


def main():
    module = AnsibleModule(
        argument_spec=dict(
            testbed=dict(type="str", required=True),
            iperf_server=dict(type="str", default="temporary",
                              choices=["temporary", "started", "running", "stopped"]),
            server_address=dict(type="str"),
            network=dict(type="str"),
            participants=dict(type="list", elements="str"),
            port=dict(type="int", default=5399),
            duration_s=dict(type="int", default=3),
            omit_s=dict(type="int", default=1),
            rtt_port=dict(type="int", default=9),
            rtt_samples=dict(type="int", default=5),
            iperf3_path=dict(type="path", default="iperf3"),
            docker_socket=dict(type="path", default="/var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    manager = ProbeManager(module)
    manager.run_mode()
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
