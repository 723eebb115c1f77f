"""flbed.verify: expectations from both ends, judging, the table and where the report goes."""

import datetime
import json
import os

import pytest

from flbed import verify

MBIT = 10 ** 6
UTC = datetime.timezone.utc


def shaping(up_mbit, down_mbit, up_delay_ms=0.0, down_delay_ms=0.0):
    return {"up_rate_bps": int(up_mbit * MBIT), "down_rate_bps": int(down_mbit * MBIT),
            "up_delay_ms": up_delay_ms, "down_delay_ms": down_delay_ms}


def measurement(name, link, up_mbit, down_mbit, rtt_ms=0.2):
    return {"participant": name, "profile": "phone", "shaping": link,
            "upload_bps": up_mbit * MBIT, "download_bps": down_mbit * MBIT, "rtt_ms": rtt_ms,
            "upload_loaded_rtt_ms": 40.0, "upload_retransmits": 3}


SERVER = {"participant": "server", "container": "flbed-t-server", "address": "172.18.0.2",
          "created": "2026-12-03T10:00:30.123456789Z", "shaping": shaping(100, 100)}


@pytest.mark.parametrize("client, server, upload, download, up_by, down_by", [
    (shaping(5, 20), shaping(100, 100), 5, 20, "client", "client"),
    (shaping(5, 20), shaping(2, 10), 5, 2, "client", "server"),   # server upload 2 < 20
    (shaping(5, 20), shaping(1, 3), 3, 1, "server", "server"),
    (shaping(0, 20), shaping(0, 0), 0, 20, None, "client"),       # unshaped upload path
    (shaping(0, 0), shaping(0, 8), 8, 0, "server", None),
])
def test_the_slower_end_sets_the_expectation(client, server, upload, download, up_by,
                                             down_by):
    expected = verify.expectations(client, server)
    assert expected["upload_bps"] == upload * MBIT
    assert expected["download_bps"] == download * MBIT
    assert (expected["upload_limited_by"], expected["download_limited_by"]) == (up_by, down_by)


def test_a_round_trip_crosses_both_directions_of_both_links():
    expected = verify.expectations(shaping(5, 20, 50, 50), shaping(100, 100, 1, 1))
    assert expected["rtt_ms"] == 102


def test_tcp_overhead_is_within_tolerance_and_a_real_shortfall_is_flagged():
    report = verify.build_report("t", SERVER, [
        measurement("client-1", shaping(5, 20), 4.78, 19.12),   # -4.4 %: TCP overhead
        measurement("client-2", shaping(20, 5), 16.0, 4.8),     # -20 % upload
    ])
    first, second = report["participants"]
    assert first["error_pct"] == {"upload": -4.4, "download": -4.4}
    assert all(first["ok"].values())
    assert second["ok"] == {"upload": False, "download": True, "rtt": True}
    assert report["ok"] is False
    assert report["flagged"] == ["client-2: upload measured 16mbit, expected 20mbit "
                                 "(-20.0 %, tolerance ±10 %)"]


def test_a_wider_tolerance_accepts_what_the_default_flags():
    rows = [measurement("client-2", shaping(20, 5), 17.0, 4.8)]
    assert verify.build_report("t", SERVER, rows)["ok"] is False
    assert verify.build_report("t", SERVER, rows, tolerance_pct=20)["ok"] is True


def test_unshaped_directions_are_not_judged():
    row = verify.judge_row(measurement("c", shaping(0, 0), 900, 900),
                           dict(SERVER["shaping"], up_rate_bps=0, down_rate_bps=0), 10)
    assert row["error_pct"] == {"upload": None, "download": None}
    assert all(row["ok"].values())


@pytest.mark.parametrize("measured_ms, ok", [(100.5, True), (104, True), (80, False),
                                             (120, False)])
def test_round_trip_bounds(measured_ms, ok):
    assert verify.rtt_ok(measured_ms, 100.0, 10) is ok


def test_table_shows_configured_expected_measured_and_the_limiting_end():
    server = dict(SERVER, shaping=shaping(2, 100))
    report = verify.build_report("t", server, [
        measurement("client-1", shaping(5, 20), 4.78, 1.91)])
    lines = verify.render_table(report).splitlines()
    assert lines[0].split() == ["participant", "up", "conf", "up", "exp", "up", "meas", "err",
                                "down", "conf", "down", "exp", "down", "meas", "err", "rtt",
                                "exp", "rtt", "meas", "ok"]
    assert lines[1].split() == ["client-1", "5mbit", "5mbit", "4.78mbit", "-4.4%", "20mbit",
                                "2mbit", "(s)", "1.91mbit", "-4.5%", "0ms", "0.20ms", "yes"]
    assert "server server: up 2mbit, down 100mbit" in lines[2]
    assert "flagged beyond ±10 %" in lines[3]
    assert verify.summary_line(report) == (
        "testbed 't': 1 clients measured, all within tolerance, median |error| 4.5 %")


def test_report_from_probes_joins_the_hosts_and_needs_a_server():
    results = [{"changed": True, "measurements": [], "server": SERVER},
               {"measurements": [measurement("client-1", shaping(5, 20), 4.8, 19.1)]},
               {"measurements": [measurement("client-2", shaping(5, 20), 4.8, 19.1)]},
               {"skipped": True}]
    report = verify.report_from_probes("t", results)
    assert [row["participant"] for row in report["participants"]] == ["client-1", "client-2"]
    with pytest.raises(ValueError, match="no host reported the server container of testbed"):
        verify.report_from_probes("t", results[1:])


def make_run(root, run_id, finished_at=None):
    run_dir = root / "t" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "plan.json").write_text("{}")
    if finished_at:
        (run_dir / "summary.json").write_text("{}")
        stamp = finished_at.timestamp()
        os.utime(run_dir / "summary.json", (stamp, stamp))
    return run_dir


def test_report_goes_into_the_run_whose_containers_are_running(tmp_path):
    now = datetime.datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    make_run(tmp_path, "20261203T090000Z", datetime.datetime(2026, 12, 3, 9, 5, tzinfo=UTC))
    kept = make_run(tmp_path, "20261203T100000Z", datetime.datetime(2026, 12, 3, 10, 5,
                                                                     tzinfo=UTC))
    assert verify.report_path(str(tmp_path), "t", SERVER["created"], now) == str(
        kept / "link_verify.json")

    later = "2026-12-03T11:00:00.1Z"    # provisioned on its own after the kept run ended
    assert verify.report_path(str(tmp_path), "t", later, now) == str(
        tmp_path / "t" / "verify-20261203T120000Z.json")

    going = make_run(tmp_path, "20261203T105900Z")     # a run still going: no summary yet
    assert verify.report_path(str(tmp_path), "t", later, now) == str(
        going / "link_verify.json")


def test_without_runs_the_report_is_standalone(tmp_path):
    now = datetime.datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    path = verify.report_path(str(tmp_path), "t", SERVER["created"], now)
    assert path == str(tmp_path / "t" / "verify-20261203T120000Z.json")
    report = verify.build_report("t", SERVER, [])
    assert json.loads(open(verify.write_report(report, path)).read())["testbed"] == "t"


TESTBED = {"name": "t", "server": {"profile": "edge_server"},
           "clients": [{"profile": "smartphone_low"}]}


def test_shaping_verify_reaches_the_plan():
    from flbed import plan, schema
    from flbed.inventory import Inventory

    inventory = Inventory({"localhost": {"flbed_host_cpus": 4}}, {"all": ["localhost"]})
    for shaping, wanted in (({}, False), ({"verify": True}, True)):
        testbed = schema.parse_testbed(dict(TESTBED, shaping=shaping), environ={})
        assert testbed.verify_links is wanted
        assert plan.make_plan(testbed, inventory)["verify_links"] is wanted


def test_shaping_verify_must_be_true_or_false():
    from flbed import schema
    from flbed.errors import InputError

    with pytest.raises(InputError) as caught:
        schema.parse_testbed(dict(TESTBED, shaping={"verify": "yes"}), environ={})
    assert caught.value.problems == ["shaping.verify: 'yes' is not allowed; use true or false"]
