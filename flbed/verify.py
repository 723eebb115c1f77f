"""Judge measured links against their shaping: the table of ``flbed verify`` and of a run whose
testbed asks for ``shaping: {verify: true}``.

The module flbed_link_probe measures each client's goodput to and from the server and its
handshake round trip, and reports the shaping the kernel holds for every participant. Here
those become one row per client: configured, expected, measured, error, verdict.

What a client can reach is set by the slower end of its path: its upload by its own upload
rate and the server's download rate, its download by the other two. A round trip passes the
netem delay of both directions of both links. TCP goodput sits about 4.4 % under the shaped
rate at MTU 1500 (1448 payload bytes per 1514-byte frame), so errors are reported against
the shaped rate and a link is flagged only beyond a tolerance that covers that overhead.
"""

import datetime
import glob
import json
import os
import statistics

from .units import format_rate

DEFAULT_TOLERANCE_PCT = 10.0
TCP_OVERHEAD_PCT = 4.4
# The handshake is timed from Python in the client's namespace; process wake-ups add up to a
# few milliseconds on a busy host, which matters only for links without delay.
RTT_SLACK_MS = 5.0
REPORT_NAME = "link_verify.json"


# ---------------------------------------------------------------- expectations and judging

def slower(rate_a_bps, rate_b_bps):
    """The rate a path of two shaped ends carries; 0 (unshaped) when neither is shaped."""
    shaped = [rate for rate in (rate_a_bps, rate_b_bps) if rate]
    return min(shaped) if shaped else 0


def expectations(client, server):
    """What a client with shaping `client` should measure against a server with `server`
    (dicts of up/down_rate_bps and up/down_delay_ms, as flbed_link_probe reports them)."""
    expected = {
        "upload_bps": slower(client["up_rate_bps"], server["down_rate_bps"]),
        "download_bps": slower(client["down_rate_bps"], server["up_rate_bps"]),
        "rtt_ms": sum(side[key] for side in (client, server)
                      for key in ("up_delay_ms", "down_delay_ms")),
    }
    expected["upload_limited_by"] = _limiter(client["up_rate_bps"], server["down_rate_bps"])
    expected["download_limited_by"] = _limiter(client["down_rate_bps"], server["up_rate_bps"])
    return expected


def _limiter(client_bps, server_bps):
    if not client_bps and not server_bps:
        return None
    if client_bps and (not server_bps or client_bps <= server_bps):
        return "client"
    return "server"


def rate_error_pct(measured_bps, expected_bps):
    """Signed error of a measured rate against the expected one, or None when unshaped."""
    if not expected_bps:
        return None
    return round((measured_bps - expected_bps) / expected_bps * 100, 2)


def rate_ok(error_pct, tolerance_pct):
    return error_pct is None or abs(error_pct) <= tolerance_pct


def rtt_ok(measured_ms, expected_ms, tolerance_pct):
    """A round trip may not be shorter than its delays, nor longer than them plus slack."""
    low = expected_ms * (1 - tolerance_pct / 100)
    high = expected_ms * (1 + tolerance_pct / 100) + RTT_SLACK_MS
    return low <= measured_ms <= high


def judge_row(measurement, server_shaping, tolerance_pct):
    """One client's row: configured, expected, measured, errors and verdicts."""
    expected = expectations(measurement["shaping"], server_shaping)
    errors = {direction: rate_error_pct(measurement[direction + "_bps"],
                                        expected[direction + "_bps"])
              for direction in ("upload", "download")}
    ok = {direction: rate_ok(errors[direction], tolerance_pct)
          for direction in ("upload", "download")}
    ok["rtt"] = rtt_ok(measurement["rtt_ms"], expected["rtt_ms"], tolerance_pct)
    return {
        "participant": measurement["participant"],
        "profile": measurement.get("profile", ""),
        "configured": measurement["shaping"],
        "expected": expected,
        "measured": {key: measurement[key] for key in
                     ("upload_bps", "download_bps", "rtt_ms", "upload_loaded_rtt_ms",
                      "upload_retransmits") if key in measurement},
        "error_pct": errors,
        "ok": ok,
    }


def flags(row, tolerance_pct):
    """One line per judged value of a row outside its tolerance."""
    lines = []
    for direction in ("upload", "download"):
        if not row["ok"][direction]:
            lines.append(
                f"{row['participant']}: {direction} measured "
                f"{_rate(row['measured'][direction + '_bps'])}, expected "
                f"{_rate(row['expected'][direction + '_bps'])} "
                f"({row['error_pct'][direction]:+.1f} %, tolerance ±{tolerance_pct:g} %)")
    if not row["ok"]["rtt"]:
        lines.append(f"{row['participant']}: round trip measured {row['measured']['rtt_ms']:g} "
                     f"ms, expected {row['expected']['rtt_ms']:g} ms")
    return lines


def build_report(testbed, server, measurements, tolerance_pct=DEFAULT_TOLERANCE_PCT,
                 measured_at=None):
    """The whole verification as JSON-ready data; `server` and `measurements` as
    flbed_link_probe returns them."""
    rows = [judge_row(m, server["shaping"], tolerance_pct) for m in measurements]
    flagged = [line for row in rows for line in flags(row, tolerance_pct)]
    measured_at = measured_at or datetime.datetime.now(datetime.timezone.utc)
    return {
        "testbed": testbed,
        "measured_at": measured_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tolerance_pct": tolerance_pct,
        "tcp_overhead_pct": TCP_OVERHEAD_PCT,
        "method": ("iperf3 TCP, one client at a time against the server; rates are the "
                   "median of the receiver's one-second intervals; round trip = TCP "
                   "handshake time. Configured = the shaping the kernel holds; expected = "
                   "the slower end of the path (client upload vs server download, client "
                   "download vs server upload) and the delays of both links."),
        "server": server,
        "participants": rows,
        "flagged": flagged,
        "ok": not flagged,
    }


def report_from_probes(testbed, probe_results, tolerance_pct=DEFAULT_TOLERANCE_PCT):
    """build_report() from the module results of every host (server start and measuring)."""
    results = [r for r in probe_results if isinstance(r, dict)]
    server = next((r["server"] for r in results if r.get("server")), None)
    if server is None:
        raise ValueError(f"no host reported the server container of testbed {testbed!r}")
    measurements = [m for r in results for m in r.get("measurements") or []]
    return build_report(testbed, server, measurements, tolerance_pct)


# ---------------------------------------------------------------- rendering

def _rate(bps):
    return format_rate(round(bps / 1000) * 1000) if bps else "unshaped"


def _error(error_pct):
    return "-" if error_pct is None else f"{error_pct:+.1f}%"


def render_table(report):
    """The report as text: one line per client, then what was flagged."""
    header = ("participant", "up conf", "up exp", "up meas", "err", "down conf", "down exp",
              "down meas", "err", "rtt exp", "rtt meas", "ok")
    rows = [header]
    for row in report["participants"]:
        conf, exp, meas = row["configured"], row["expected"], row["measured"]
        rows.append((
            row["participant"], _rate(conf["up_rate_bps"]),
            _rate(exp["upload_bps"]) + _by(exp["upload_limited_by"]),
            _rate(meas["upload_bps"]), _error(row["error_pct"]["upload"]),
            _rate(conf["down_rate_bps"]),
            _rate(exp["download_bps"]) + _by(exp["download_limited_by"]),
            _rate(meas["download_bps"]), _error(row["error_pct"]["download"]),
            f"{exp['rtt_ms']:g}ms", f"{meas['rtt_ms']:.2f}ms",
            "yes" if all(row["ok"].values()) else "NO"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(r, widths)).rstrip()
             for r in rows]
    server = report["server"]["shaping"]
    lines.append(f"server {report['server']['participant']}: up "
                 f"{_rate(server['up_rate_bps'])}, down {_rate(server['down_rate_bps'])}; "
                 "(s) = the server's end is the slower one")
    lines.append(f"TCP goodput sits ~{report['tcp_overhead_pct']:g} % under the shaped rate; "
                 f"flagged beyond ±{report['tolerance_pct']:g} %")
    lines += [f"flagged: {line}" for line in report["flagged"]]
    return "\n".join(lines)


def _by(limiter):
    return " (s)" if limiter == "server" else ""


def summary_line(report):
    rows = report["participants"]
    if not rows:
        return f"testbed {report['testbed']!r}: no clients measured"
    errors = [abs(e) for row in rows for e in row["error_pct"].values() if e is not None]
    median = f", median |error| {statistics.median(errors):.1f} %" if errors else ""
    verdict = "all within tolerance" if report["ok"] else f"{len(report['flagged'])} flagged"
    return f"testbed {report['testbed']!r}: {len(rows)} clients measured, {verdict}{median}"


# ---------------------------------------------------------------- where the report goes

def _parse_docker_time(text):
    """Docker's '2026-12-03T17:40:12.123456789Z' as an aware datetime (to the second)."""
    return datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)


def report_path(runs_root, testbed, server_created=None, now=None):
    """Where a standalone verification goes: the newest run directory of the testbed when
    the running containers belong to that run, else runs/<testbed>/verify-<time>.json.

    The containers belong to the newest run when they were made after it started and
    before it finished (a run still going, or one kept with --keep); a testbed provisioned
    on its own after that run has newer containers.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    base = os.path.join(runs_root, testbed)
    fallback = os.path.join(base, "verify-" + now.strftime("%Y%m%dT%H%M%SZ") + ".json")
    runs = sorted(glob.glob(os.path.join(base, "*", "plan.json")))
    if not runs or not server_created:
        return fallback
    run_dir = os.path.dirname(runs[-1])
    created = _parse_docker_time(server_created)
    try:
        started = datetime.datetime.strptime(os.path.basename(run_dir), "%Y%m%dT%H%M%SZ") \
            .replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return fallback
    summary = os.path.join(run_dir, "summary.json")
    finished = (datetime.datetime.fromtimestamp(os.path.getmtime(summary),
                                                datetime.timezone.utc)
                if os.path.exists(summary) else None)
    if started <= created and (finished is None or created <= finished):
        return os.path.join(run_dir, REPORT_NAME)
    return fallback


def write_report(report, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    return path
