"""flbed_link_probe through real Ansible against busybox containers on a Docker network:
the containers have no iperf3; the host's runs in their namespaces. Needs root, Docker and
the host's iperf3."""

import shutil

import pytest

from .conftest_link import (  # noqa: F401  (fixtures are used by name)
    busybox_image, remove_container, run, run_flbed_link, start_container)

pytestmark = pytest.mark.integration

MBIT = 10 ** 6
TESTBED = "flbedtest-probe"
NETWORK = "flbedtest-probe-net"
CLIENT_RATES_MBIT = {"client-1": (5, 20), "client-2": (20, 5)}


@pytest.fixture
def probe_testbed(busybox_image):
    if shutil.which("iperf3") is None:
        pytest.skip("needs iperf3 on the host (apt-get install -y iperf3)")
    run(["docker", "network", "rm", NETWORK], check=False)
    run(["docker", "network", "create", "--label", "flbed.testbed=" + TESTBED, NETWORK])
    names = []
    for participant, role in [("server", "server"), ("client-1", "client"),
                              ("client-2", "client")]:
        name = "%s-%s" % (TESTBED, participant)
        start_container(name, busybox_image, [
            "--network", NETWORK, "--label", "flbed.testbed=" + TESTBED,
            "--label", "flbed.role=" + role, "--label", "flbed.participant=" + participant])
        names.append(name)
    yield names
    for name in names:
        remove_container(name)
    run(["docker", "network", "rm", NETWORK], check=False)


def shape(tmp_path, names, server_mbit):
    links = [{"container": names[0], "participant": "server",
              "up_rate_bps": server_mbit * MBIT, "down_rate_bps": server_mbit * MBIT}]
    links += [{"container": name, "participant": participant, "up_rate_bps": up * MBIT,
               "down_rate_bps": down * MBIT}
              for name, (participant, (up, down)) in zip(names[1:],
                                                         CLIENT_RATES_MBIT.items())]
    result = run_flbed_link(tmp_path, {"links": links})
    assert result.get("failed") is not True, result


def probe(tmp_path, **args):
    return run_flbed_link(tmp_path, dict({"testbed": TESTBED, "network": NETWORK}, **args),
                          module="flbed_link_probe", diff=False)


def test_probe_measures_each_client_within_ten_percent(probe_testbed, tmp_path):
    shape(tmp_path, probe_testbed, server_mbit=100)
    result = probe(tmp_path)
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["server"]["shaping"]["down_rate_bps"] == 100 * MBIT
    measured = {m["participant"]: m for m in result["measurements"]}
    assert list(measured) == ["client-1", "client-2"]
    for participant, (up_mbit, down_mbit) in CLIENT_RATES_MBIT.items():
        row = measured[participant]
        print(participant, row)
        assert row["shaping"]["up_rate_bps"] == up_mbit * MBIT
        assert abs(row["upload_bps"] / MBIT - up_mbit) <= 0.1 * up_mbit, row
        assert abs(row["download_bps"] / MBIT - down_mbit) <= 0.1 * down_mbit, row
        assert 0 < row["rtt_ms"] < 50, row
    assert not run(["pgrep", "-f", "flbed-probe-%s.pid" % TESTBED], check=False).stdout


def test_the_slower_end_limits_what_a_client_measures(probe_testbed, tmp_path):
    shape(tmp_path, probe_testbed, server_mbit=2)
    result = probe(tmp_path, participants=["client-1"])
    row = result["measurements"][0]
    assert [m["participant"] for m in result["measurements"]] == ["client-1"]
    assert abs(row["upload_bps"] / MBIT - 2) <= 0.2, row      # server download 2 < 5
    assert abs(row["download_bps"] / MBIT - 2) <= 0.2, row    # server upload 2 < 20


def test_started_running_stopped_leave_no_server_behind(probe_testbed, tmp_path):
    started = probe(tmp_path, iperf_server="started")
    assert started["changed"] is True and started["measurements"] == []
    assert probe(tmp_path, iperf_server="started")["changed"] is False
    measured = probe(tmp_path, iperf_server="running", duration_s=1,
                     server_address=started["server"]["address"], participants=["client-2"])
    assert measured["measurements"][0]["download_bps"] > 0, measured
    assert probe(tmp_path, iperf_server="stopped")["changed"] is True
    assert probe(tmp_path, iperf_server="stopped")["changed"] is False


def test_unknown_participants_and_a_missing_server_are_named(probe_testbed, tmp_path):
    unknown = probe(tmp_path, participants=["client-9"])
    assert unknown["failed"] is True
    assert "no running client container for client-9" in unknown["msg"]
    assert "client-1, client-2" in unknown["msg"]

    remove_container(probe_testbed[0])
    missing = probe(tmp_path)
    assert missing["failed"] is True and "no running server container" in missing["msg"]
