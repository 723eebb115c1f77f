# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tell a testbed that makes progress from one that is stuck, standard library only.

A participant that dies is seen at once: its container exits. One that cannot reach the
server does not exit; FederatedScope drops what it cannot deliver and then waits, and the
server waits for it for good. So the watch looks for signs of life instead, per participant:

- its output grows (FederatedScope logs a line when it joins, trains, evaluates),
- its CPU use since the last window is above a threshold (local training logs nothing until
  it ends; only counted where waiting participants sleep, ``federatedscope.wait: blocking``),
- its link moves more than a trickle (a large model on a slow link takes long to send).

When no participant of a host has shown any of these for the fault timeout, the testbed is
stalled. Then the clients it waits for are named: those whose log has no client id never
joined; else those whose last round is behind; else those whose log grew after the last
message they sent (a client logs its round before it sends the update, and logs a warning
when the update cannot be delivered; a reply lost on the way leaves the client's round level
with the others'). Where no client stands out, the server is named, with that said.

What is kept between two looks sits in ``<workdir>/<name>/progress.json``.
"""

import json
import os
import re

PROGRESS_FILE = "progress.json"
# Rates are judged over windows of this length, so one packet or one wake-up is no activity.
WINDOW_S = 5.0
# A link moving less than this (bytes per second, both directions) carries no model: a few
# connection attempts or keepalives stay under it, a 128 kbit/s upload does not.
ACTIVE_LINK_BYTES_PER_S = 2000.0
# A client that transmits at least this much between two looks sent a message; neighbour
# discovery and other chatter of an otherwise silent interface stay under it.
SENT_MIN_BYTES = 300
NS_PER_S = 1e9
LOG_NAME = "exp_print.log"
JOINED_PATTERN = re.compile(r"is assigned with #(\d+)")
CLIENT_ROUND_PATTERN = re.compile(r"'Role': 'Client #\d+', 'Round': (\d+)")


def scan_log(text, record):
    """Fold new log text into the record: whether the client joined, its last round."""
    if JOINED_PATTERN.search(text):
        record["joined"] = True
    rounds = [int(found) for found in CLIENT_ROUND_PATTERN.findall(text)]
    if rounds:
        record["round"] = max(rounds + [record.get("round") or 0])


def read_outputs(out_dir, record):
    """Total size of the participant's output files; new log lines are scanned on the way.

    Only what was appended since the last look is read, so a long run costs little.
    """
    total = 0
    offsets = record.setdefault("log_offsets", {})
    for folder, _, files in os.walk(out_dir or ""):
        for name in files:
            path = os.path.join(folder, name)
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            total += size
            if name == LOG_NAME and size > offsets.get(path, 0):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    handle.seek(offsets.get(path, 0))
                    scan_log(handle.read(), record)
                offsets[path] = size
    return total


def fresh_record(launched_at, now):
    return {"launched_at": launched_at, "last_active_at": now, "window_at": now,
            "cpu_ns": None, "link_bytes": None, "out_bytes": 0, "joined": False,
            "round": None, "log_offsets": {}, "tx_bytes": None, "last_sent_at": None,
            "last_output_at": None}


def link_bytes(devices, device="eth0"):
    """(received + sent, sent) bytes of the container's link; (None, None) when unknown."""
    counters = (devices or {}).get(device)
    if counters is None:
        return None, None
    return counters["rx_bytes"] + counters["tx_bytes"], counters["tx_bytes"]


def _rate(now_value, then_value, elapsed_s):
    if now_value is None or then_value is None or elapsed_s <= 0 or now_value < then_value:
        return None
    return (now_value - then_value) / elapsed_s


def update(record, sample, now, launched_at, active_cpu_pct):
    """The record after one more look at a participant.

    ``sample`` has ``running``, ``out_bytes``, ``cpu_ns``, ``link_bytes`` and ``tx_bytes``
    (None: unknown). Activity moves ``last_active_at`` to ``now``; ``active`` in the result
    says why, or None.
    """
    if not record or record.get("launched_at") != launched_at:
        record = fresh_record(launched_at, now)
    record = dict(record)
    sent = _rate(sample.get("tx_bytes"), record["tx_bytes"], 1.0)  # bytes since the last look
    if sent is not None and sent >= SENT_MIN_BYTES:
        record["last_sent_at"] = now
    record["tx_bytes"] = sample.get("tx_bytes")
    why = None
    if sample["out_bytes"] > record["out_bytes"]:
        why = "output"
        record["last_output_at"] = now
    record["out_bytes"] = sample["out_bytes"]
    elapsed_s = now - record["window_at"]
    if sample["running"] and (elapsed_s >= WINDOW_S or record["cpu_ns"] is None):
        cpu = _rate(sample["cpu_ns"], record["cpu_ns"], elapsed_s)
        link = _rate(sample["link_bytes"], record["link_bytes"], elapsed_s)
        if active_cpu_pct > 0 and cpu is not None and 100 * cpu / NS_PER_S >= active_cpu_pct:
            why = why or "cpu"
        if link is not None and link >= ACTIVE_LINK_BYTES_PER_S:
            why = why or "link"
        record.update(window_at=now, cpu_ns=sample["cpu_ns"], link_bytes=sample["link_bytes"])
    if why:
        record["last_active_at"] = now
    record["active"] = why
    return record


def load(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def save(path, record):
    with open(path + ".part", "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(path + ".part", path)


def quiet_s(records, now):
    """Seconds since the last sign of life of any participant; None without records."""
    if not records:
        return None
    return now - max(record["last_active_at"] for record in records)


def _logged_after_sending(record):
    logged_at, sent_at = record.get("last_output_at"), record.get("last_sent_at")
    return logged_at is not None and (sent_at is None or sent_at < logged_at)


def _shown(round_id):
    return "none" if round_id is None else round_id


def culprits(entries, server_round, quiet_for_s):
    """Who a stalled host waits for: [(entry, reason)].

    ``entries`` are the running participants here, each with ``role`` and its ``progress``
    record; ``server_round`` is the server's round in progress counted from 1, or None.
    """
    quiet = f"nothing moved for {quiet_for_s:.0f} s"
    clients = [e for e in entries if e.get("role") == "client"]
    never = [e for e in clients if not e["progress"].get("joined")]
    if never:
        return [(e, f"never joined the server ({quiet}, and its log has no client id)")
                for e in never]
    rounds = [e["progress"].get("round") for e in clients]
    known = [r for r in rounds if r is not None]
    reached = max(known + ([server_round - 1] if server_round else []), default=None)
    behind = [e for e, r in zip(clients, rounds)
              if reached is not None and (r if r is not None else -1) < reached]
    if behind:
        return [(e, f"stopped reporting: its last round is {_shown(e['progress'].get('round'))} "
                    f"while the run reached round {reached} ({quiet})") for e in behind]
    unsent = [e for e in clients if _logged_after_sending(e["progress"])]
    if unsent:
        return [(e, f"stopped reporting: it logged after the last message it sent, so its "
                    f"update did not get out ({quiet})") for e in unsent]
    stuck = [e for e in entries if e.get("role") == "server"] or entries
    where = f" in round {server_round - 1}" if server_round else ""
    return [(e, f"made no progress{where} ({quiet}); no client is behind, so the stuck "
                f"participant cannot be told") for e in stuck]
