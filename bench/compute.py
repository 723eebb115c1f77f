#!/usr/bin/env python3
"""Benchmark of compute emulation (not a test): what busy waiting and throttled start-up cost.

Runs the real FederatedScope (toy data, logistic regression) with 10 and 20 clients at a CPU
quota of 0.15 each, for every combination of

- ``federatedscope.wait``: ``spinning`` (the framework untouched: a waiting participant burns
  its whole quota) or ``blocking`` (flbed's entry point replaces the busy loop), and
- ``federatedscope.throttle_from_start``: ``true`` (the quota binds while the framework starts)
  or ``false`` (start at the host's speed, quota from listening on),

and reports per run: the whole ``flbed run`` time, the time from the server listening to
round 0, and the mean round time, all from the server's log and summary.json.

Needs Docker and FLBED_FS_SOURCE (a FederatedScope checkout). From the repository root:
    FLBED_FS_SOURCE=/path/to/FederatedScope .venv/bin/python bench/compute.py \
        [--clients 10 20] [--rounds 4] [--cpus 0.15] [--out runs/bench/compute.json]
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, REPO)

from bench.common import round_starts  # noqa: E402


def write_testbed(folder, name, clients, rounds, cpus, wait, from_start):
    testbed = {
        "name": name,
        "timeout": "40m",
        "federatedscope": {
            "wait": wait, "throttle_from_start": from_start,
            "config": {"data": {"type": "toy"}, "model": {"type": "lr"},
                       "federate": {"total_round_num": rounds}}},
        "profiles": {
            "bench_server": {"extends": "edge_server", "memory": "1g", "cpus": 0.5},
            "bench_device": {"extends": "smartphone_low", "memory": "512m", "cpus": cpus}},
        "server": {"profile": "bench_server"},
        "clients": [{"profile": "bench_device", "count": clients}],
        "shaping": {"allow_missing": ["delay", "jitter", "loss"]},
    }
    path = os.path.join(folder, f"{name}.yml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(testbed, handle)
    return path


def measure(summary, run_dir, run_s):
    """Times of one run; round 0 is kept apart, since it also pays one-off set-up costs."""
    starts = round_starts(run_dir)
    listening = summary["emulation"]["cpu_quotas"]["server"]["applied_at"]
    rounds = sorted(starts)
    later_s = None
    if len(rounds) >= 3:
        later_s = (starts[rounds[-1]] - starts[rounds[1]]) / (rounds[-1] - rounds[1])
    return {
        "status": summary["status"], "run_s": round(run_s, 1),
        "to_first_round_s": round(starts[0] - listening, 1) if 0 in starts else None,
        "first_round_s": round(starts[1] - starts[0], 2) if 1 in starts else None,
        "later_round_s": None if later_s is None else round(later_s, 2),
        "rounds_completed": summary["rounds_completed"],
        "warnings": summary.get("warnings", []),
    }


def run_one(folder, runs_root, clients, rounds, cpus, wait, from_start):
    name = f"bc-{clients}-{wait[:4]}-{'slow' if from_start else 'fast'}"
    path = write_testbed(folder, name, clients, rounds, cpus, wait, from_start)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flbed", "run", path, "--json",
                           "--runs-root", runs_root], cwd=REPO, capture_output=True, text=True)
    run_s = time.monotonic() - started
    if not done.stdout.strip():
        return {"status": "error", "run_s": round(run_s, 1), "stderr": done.stderr[-2000:]}
    summary = json.loads(done.stdout)
    return measure(summary, summary["run_dir"], run_s)


def table(results):
    lines = ["| clients | wait | quota binds | flbed run (s) | listening to round 0 (s) "
             "| round 0 (s) | later rounds (s) | status |", "|---|---|---|---|---|---|---|---|"]
    for entry in results:
        lines.append(
            f"| {entry['clients']} | {entry['wait']} | "
            f"{'from start' if entry['throttle_from_start'] else 'once listening'} | "
            f"{entry['run_s']} | {entry.get('to_first_round_s')} | "
            f"{entry.get('first_round_s')} | {entry.get('later_round_s')} | {entry['status']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cpus", type=float, default=0.15)
    parser.add_argument("--out", default=os.path.join(REPO, "runs", "bench", "compute.json"))
    args = parser.parse_args()
    if not os.environ.get("FLBED_FS_SOURCE"):
        sys.exit("set FLBED_FS_SOURCE to a FederatedScope checkout: the stand-in never spins")

    folder = tempfile.mkdtemp(prefix="flbed-bench-compute-")
    results = []
    for clients, wait, from_start in itertools.product(
            args.clients, ("spinning", "blocking"), (True, False)):
        entry = {"clients": clients, "wait": wait, "throttle_from_start": from_start,
                 "cpus": args.cpus}
        entry.update(run_one(folder, os.path.join(folder, "runs"), clients, args.rounds,
                             args.cpus, wait, from_start))
        results.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    print(table(results))


if __name__ == "__main__":
    main()
