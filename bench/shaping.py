#!/usr/bin/env python3
"""Benchmark of link shaping (not a test): how long flbed_link takes, and how exact it is.

1. Shapes 10 and 50 running busybox containers with the net_shaping role in one
   ansible-playbook run (first run: every link new; second run: nothing to change), then the
   same links with a plain shell loop of `nsenter ... tc`: the same work per container, an
   egress TBF, the ingress redirect to an ifb and a TBF on it. An ansible-playbook run of an
   empty play is timed too, to tell Ansible's own start-up from the module's work.
2. Measures TCP goodput through TBF at 256 kbit .. 100 mbit, both directions, with iperf3
   between two network namespaces.

Needs root, Docker, iperf3, /bin/busybox (busybox-static). Run from the repository root:
    sudo .venv/bin/python bench/shaping.py [--out runs/bench/shaping.json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
sys.path.insert(0, REPO)

import flbed_tc  # noqa: E402
from tests.integration import conftest_link as helpers  # noqa: E402

TESTBED = "flbedbench"
LINK = {"up_rate_bps": 5000000, "down_rate_bps": 20000000}
RATES_BPS = [256000, 1000000, 10000000, 100000000]


def sh(argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def start_containers(count):
    names = ["flbedbench-%02d" % i for i in range(count)]
    for name in names:
        sh(["docker", "run", "-d", "--name", name, "--label", "flbed.testbed=" + TESTBED,
            helpers.BUSYBOX_IMAGE, "sleep", "600"])
    return names


def remove_containers(names):
    subprocess.run(["docker", "rm", "-f"] + names, capture_output=True)


def time_playbook(names, state="present", empty=False):
    playbook = os.path.join(tempfile.mkdtemp(prefix="flbedbench"), "shape.yml")
    participants = [{"container": n, "name": n, "link": LINK} for n in names]
    tasks = [{"ansible.builtin.include_role": {"name": "net_shaping"},
              "vars": {"net_shaping_participants": participants,
                       "net_shaping_testbed": TESTBED, "net_shaping_state": state}}]
    with open(playbook, "w") as handle:
        json.dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                    "tasks": [] if empty else tasks}], handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    started = time.monotonic()
    subprocess.run([helpers.ansible_bin("ansible-playbook"), "-i", "localhost,", playbook],
                   check=True, cwd=REPO, env=env, capture_output=True)
    return time.monotonic() - started


def time_shell_loop(names):
    """The same commands flbed_link plans, in one bash loop without reading state first."""
    wanted = flbed_tc.wanted_link(LINK)
    empty = {"upload": None, "download": None, "ingress_qdisc": False, "redirect_ok": False,
             "ifb_exists": False, "ifb_up": False}
    lines = flbed_tc.format_commands(flbed_tc.plan_present(wanted, empty, "eth0", "ifb-flbed"))
    body = "\n".join('  nsenter -t "$pid" -n ' + line for line in lines)
    script = ('for c in %s; do\n  pid=$(docker inspect -f "{{.State.Pid}}" "$c")\n%s\ndone\n'
              % (" ".join(names), body))
    started = time.monotonic()
    subprocess.run(["bash", "-e", "-c", script], check=True, capture_output=True)
    return time.monotonic() - started


def bench_speed(counts):
    rows = []
    for count in counts:
        names = start_containers(count)
        try:
            row = {"containers": count, "playbook_s": time_playbook(names)}
            row["playbook_again_s"] = time_playbook(names)      # idempotent: no change
            time_playbook(names, state="absent")
            row["shell_loop_s"] = time_shell_loop(names)
            row["empty_playbook_s"] = time_playbook(names, empty=True)
            row["ratio_to_shell"] = round(row["playbook_s"] / row["shell_loop_s"], 2)
            rows.append(row)
        finally:
            remove_containers(names)
    return rows


def bench_accuracy():
    pair = helpers.NetnsPair("bench").create()
    rows = []
    try:
        for rate_bps in RATES_BPS:
            wanted = flbed_tc.wanted_link({"up_rate_bps": rate_bps, "down_rate_bps": rate_bps})
            state = {"upload": None, "download": None, "ingress_qdisc": False,
                     "redirect_ok": False, "ifb_exists": False, "ifb_up": False}
            subprocess.run(["ip", "netns", "exec", pair.a, "sh", "-c",
                            "tc qdisc del dev eth0 root; tc qdisc del dev eth0 ingress; "
                            "ip link del ifb-flbed"], capture_output=True)
            for argv in flbed_tc.plan_present(wanted, state, "eth0", "ifb-flbed"):
                sh(["ip", "netns", "exec", pair.a] + argv)
            up = helpers.iperf3_mbit(pair.a, pair.b, pair.ip_b, seconds=5)
            down = helpers.iperf3_mbit(pair.a, pair.b, pair.ip_b, reverse=True, seconds=5)
            mbit = rate_bps / 1e6
            rows.append({"rate_bps": rate_bps, "upload_mbit": round(up, 4),
                         "download_mbit": round(down, 4),
                         "upload_error_pct": round((up - mbit) / mbit * 100, 2),
                         "download_error_pct": round((down - mbit) / mbit * 100, 2)})
    finally:
        pair.delete()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "bench", "shaping.json"))
    parser.add_argument("--counts", default="10,50")
    parser.add_argument("--no-accuracy", action="store_true", help="time the shaping only")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("iperf3") is None:
        sys.exit("needs root and iperf3")

    with tempfile.TemporaryDirectory() as tmp:
        tar_path = os.path.join(tmp, "rootfs.tar")
        helpers._build_busybox_rootfs(tar_path)
        sh(["docker", "import", tar_path, helpers.BUSYBOX_IMAGE])
    speed = bench_speed([int(c) for c in args.counts.split(",")])
    accuracy = [] if args.no_accuracy else bench_accuracy()

    print("%-10s %11s %17s %13s %12s %9s" % ("containers", "playbook s", "playbook again s",
                                              "shell loop s", "empty play s", "ratio"))
    for row in speed:
        print("%-10d %11.2f %17.2f %13.2f %12.2f %9.2f" % (
            row["containers"], row["playbook_s"], row["playbook_again_s"],
            row["shell_loop_s"], row["empty_playbook_s"], row["ratio_to_shell"]))
    print()
    print("%-10s %10s %8s %10s %8s" % ("rate", "up Mbit/s", "err %", "down Mbit/s", "err %"))
    for row in accuracy:
        print("%-10s %10.3f %8.2f %10.3f %8.2f" % (
            "%gmbit" % (row["rate_bps"] / 1e6), row["upload_mbit"], row["upload_error_pct"],
            row["download_mbit"], row["download_error_pct"]))

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"speed": speed, "accuracy": accuracy, "link": LINK}, handle, indent=2)
    print("\nwrote", args.out)


if __name__ == "__main__":
    main()
