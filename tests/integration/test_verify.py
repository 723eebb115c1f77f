"""`flbed verify` on a provisioned testbed: the real engine, real shaping, the host's iperf3.
FederatedScope is the stand-in under tests/fs_standin (verification needs no training)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

STANDIN = str(REPO / "tests" / "fs_standin")
NAME = "flbedtest-verify"
pytestmark = pytest.mark.integration

# Client links chosen so that each direction is limited by a different end: client-1's
# download (20 mbit) by the server's upload (10 mbit), client-2's upload by itself.
TESTBED = {
    "name": NAME,
    "timeout": "5m",
    "federatedscope": {"config": {"data": {"type": "toy"}, "model": {"type": "lr"},
                                  "federate": {"total_round_num": 2}}},
    "profiles": {
        "server_box": {"extends": "edge_server", "memory": "512m", "cpus": 0.5,
                       "link": {"up": "10mbit", "down": "100mbit"}},
        "phone": {"extends": "smartphone_low", "memory": "512m", "cpus": 0.5,
                  "link": {"up": "5mbit", "down": "20mbit"}},
        "pi": {"extends": "raspberry_pi", "memory": "512m", "cpus": 0.5,
               "link": {"up": "20mbit", "down": "5mbit"}},
    },
    "server": {"profile": "server_box"},
    "clients": [{"profile": "phone"}, {"profile": "pi"}],
    "shaping": {"allow_missing": ["delay", "jitter", "loss"]},
}
MBIT = 10 ** 6
EXPECTED_MBIT = {"client-1": (5, 10), "client-2": (20, 5)}


def flbed(*args, timeout=1200):
    env = dict(os.environ, FLBED_FS_SOURCE=STANDIN)
    return subprocess.run([sys.executable, "-m", "flbed", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def provisioned(tmp_path):
    if shutil.which("iperf3") is None:
        pytest.skip("needs iperf3 on the host (apt-get install -y iperf3)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("needs a running Docker engine (make test starts one)")
    path = tmp_path / "verify.yml"
    path.write_text(yaml.safe_dump(TESTBED))
    made = flbed("provision", str(path), "-q")
    try:
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
        yield tmp_path
    finally:
        flbed("teardown", NAME, "-q")


def test_verify_measures_every_client_within_ten_percent(provisioned):
    runs = provisioned / "runs"
    done = flbed("verify", NAME, "--runs-root", str(runs), "--json", "-q", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)

    written = [p for p in (runs / NAME).iterdir() if p.name.startswith("verify-")]
    assert [str(p) for p in written] == [report["path"]]
    assert json.loads(written[0].read_text())["participants"] == report["participants"]

    rows = {row["participant"]: row for row in report["participants"]}
    assert sorted(rows) == ["client-1", "client-2"]
    assert report["server"]["shaping"]["up_rate_bps"] == 10 * MBIT
    assert rows["client-1"]["expected"]["download_limited_by"] == "server"
    for name, (up_mbit, down_mbit) in EXPECTED_MBIT.items():
        measured = rows[name]["measured"]
        print(name, measured, rows[name]["error_pct"])
        assert rows[name]["expected"]["upload_bps"] == up_mbit * MBIT
        assert rows[name]["expected"]["download_bps"] == down_mbit * MBIT
        assert abs(measured["upload_bps"] / MBIT - up_mbit) <= 0.1 * up_mbit, measured
        assert abs(measured["download_bps"] / MBIT - down_mbit) <= 0.1 * down_mbit, measured
        assert 0 < measured["rtt_ms"] < 50
    assert report["ok"] is True and report["flagged"] == []
    assert not subprocess.run(["pgrep", "-f", "flbed-probe-" + NAME], capture_output=True,
                              text=True).stdout, "the iperf3 server must be gone"


def test_a_tolerance_below_the_tcp_overhead_flags_and_fails(provisioned):
    done = flbed("verify", NAME, "--runs-root", str(provisioned / "runs"), "--tolerance",
                 "1", "-q", timeout=600)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "flagged: client-1: upload measured" in done.stdout
    assert "flagged beyond ±1 %" in done.stdout
