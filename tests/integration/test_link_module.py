"""flbed_link through real Ansible on the real kernel: a veth pair between two namespaces,
and a real container. Needs root; the container test needs Docker too."""


import pytest

from .conftest_link import (  # noqa: F401  (fixtures are used by name)
    TEST_TESTBED, busybox_container, busybox_image, container_pid, netem_missing_reason,
    netns_pair, iperf3_mbit, qdiscs_in_container, run, run_flbed_link)

pytestmark = pytest.mark.integration

MBIT = 10 ** 6
CAP_NET_ADMIN = 12   # bit number in /proc/PID/status capability masks


def shaped_kinds(pair, dev="eth0"):
    return sorted(q["kind"] for q in pair.tc_json("qdisc", "show", "dev", dev)
                  if q["kind"] not in ("noqueue", "pfifo_fast"))


def test_four_step_idempotence_with_diff(netns_pair, tmp_path):
    args = {"netns": netns_pair.a, "participant": "client_1", "up_rate_bps": 5 * MBIT,
            "down_rate_bps": 20 * MBIT}

    first_check = run_flbed_link(tmp_path, args, check=True)
    assert first_check["changed"] is True, first_check
    assert shaped_kinds(netns_pair) == [], "check mode must change nothing"
    assert "ifb-flbed" not in netns_pair.link_names()
    assert first_check["diff"]["before"] == {"upload": "unshaped", "download": "unshaped"}
    assert first_check["diff"]["after"]["upload"]["rate_bps"] == 5 * MBIT
    assert first_check["diff"]["after"]["download"]["rate_bps"] == 20 * MBIT

    applied = run_flbed_link(tmp_path, args)
    assert applied["changed"] is True, applied
    assert applied["commands"] == first_check["commands"]
    assert shaped_kinds(netns_pair) == ["ingress", "tbf"]
    assert shaped_kinds(netns_pair, "ifb-flbed") == ["tbf"]
    tbf = netns_pair.tc_json("qdisc", "show", "dev", "eth0")[0]
    assert tbf["options"]["rate"] == 5 * MBIT // 8

    second_check = run_flbed_link(tmp_path, args, check=True)
    assert second_check["changed"] is False and second_check["commands"] == [], second_check
    again = run_flbed_link(tmp_path, args)
    assert again["changed"] is False and again["commands"] == [], again
    assert again["diff"]["before"] == again["diff"]["after"] == applied["link"]


def test_a_changed_rate_rebuilds_only_its_direction(netns_pair, tmp_path):
    args = {"netns": netns_pair.a, "up_rate_bps": 5 * MBIT, "down_rate_bps": 20 * MBIT}
    run_flbed_link(tmp_path, args)
    changed = run_flbed_link(tmp_path, dict(args, down_rate_bps=30 * MBIT))
    assert changed["changed"] is True
    assert [c.split(" ", 2)[2] for c in changed["commands"]] == [
        "tc qdisc del dev ifb-flbed root",
        "tc qdisc add dev ifb-flbed root handle 1: tbf rate 30000000bit burst 16600b "
        "limit 391600b"]
    assert changed["diff"]["before"]["upload"] == changed["diff"]["after"]["upload"]


def test_absent_leaves_no_qdisc_and_no_ifb(netns_pair, tmp_path):
    run_flbed_link(tmp_path, {"netns": netns_pair.a, "up_rate_bps": MBIT,
                              "down_rate_bps": MBIT})
    assert "ifb-flbed" in netns_pair.link_names()

    absent = {"netns": netns_pair.a, "state": "absent"}
    assert run_flbed_link(tmp_path, absent, check=True)["changed"] is True
    assert "ifb-flbed" in netns_pair.link_names(), "check mode must change nothing"
    removed = run_flbed_link(tmp_path, absent)
    assert removed["changed"] is True and removed["diff"]["after"] == {
        "upload": "unshaped", "download": "unshaped"}
    assert shaped_kinds(netns_pair) == []
    assert netns_pair.tc_json("filter", "show", "dev", "eth0", "ingress") == []
    assert "ifb-flbed" not in netns_pair.link_names()
    assert run_flbed_link(tmp_path, absent)["changed"] is False


@pytest.mark.parametrize("rate_mbit", [1, 10, 50])
def test_measured_rate_is_within_ten_percent(netns_pair, tmp_path, rate_mbit):
    rate_bps = rate_mbit * MBIT
    result = run_flbed_link(tmp_path, {"netns": netns_pair.a, "up_rate_bps": rate_bps,
                                       "down_rate_bps": rate_bps})
    assert result.get("failed") is not True, result

    upload = iperf3_mbit(netns_pair.a, netns_pair.b, netns_pair.ip_b)
    download = iperf3_mbit(netns_pair.a, netns_pair.b, netns_pair.ip_b, reverse=True)
    print("configured %d mbit: upload %.3f, download %.3f Mbit/s" % (rate_mbit, upload,
                                                                     download))
    assert abs(upload - rate_mbit) <= 0.1 * rate_mbit, upload
    assert abs(download - rate_mbit) <= 0.1 * rate_mbit, download


def test_unshaped_reference_is_far_above_the_shaped_rates(netns_pair):
    """Without this the rate test could pass on a path that is slow anyway."""
    assert iperf3_mbit(netns_pair.a, netns_pair.b, netns_pair.ip_b) > 500


def test_bad_values_fail_with_the_value_and_what_is_allowed(netns_pair, tmp_path):
    result = run_flbed_link(tmp_path, {"netns": netns_pair.a, "participant": "client_9",
                                       "up_rate_bps": -1, "loss_pct": 120, "jitter_ms": 5})
    assert result["failed"] is True
    assert "participant 'client_9'" in result["msg"]
    assert "up_rate_bps=-1 is not allowed; allowed: 0 (unshaped) or 8000" in result["msg"]
    assert "loss_pct=120.0 is not allowed; allowed: 0..100" in result["msg"]
    assert "jitter_ms=5.0 needs a delay" in result["msg"]

    missing = run_flbed_link(tmp_path, {"netns": "flbedtest-no-such-ns", "up_rate_bps": MBIT})
    assert "network namespace 'flbedtest-no-such-ns' does not exist" in missing["msg"]
    assert netns_pair.a in missing["msg"]


def test_missing_netem_fails_or_is_recorded_when_allowed(netns_pair, tmp_path):
    if netem_missing_reason() is None:
        pytest.skip("this kernel has netem, so the missing-netem path cannot be shown")
    args = {"netns": netns_pair.a, "participant": "iot_1", "host": "lab-pi-3",
            "up_rate_bps": 128000, "delay_ms": 300, "loss_pct": 5}
    refused = run_flbed_link(tmp_path, args)
    assert refused["failed"] is True
    for part in ("host 'lab-pi-3'", "participant 'iot_1'", "delay_ms=300.0", "loss_pct=5.0",
                 "netem", "allow_missing"):
        assert part in refused["msg"]
    assert shaped_kinds(netns_pair) == []

    allowed = run_flbed_link(tmp_path, dict(args, allow_missing=["delay_ms", "loss_pct"]))
    assert allowed["changed"] is True and allowed["not_applied"] == ["delay_ms", "loss_pct"]
    assert run_flbed_link(tmp_path, dict(args, allow_missing=["delay_ms", "loss_pct"]))[
        "changed"] is False


def test_netem_delay_doubles_the_round_trip(netns_pair, tmp_path):
    reason = netem_missing_reason()
    if reason:
        pytest.skip(reason)
    args = {"netns": netns_pair.a, "delay_ms": 50, "loss_pct": 0}
    assert run_flbed_link(tmp_path, args)["changed"] is True
    assert run_flbed_link(tmp_path, args)["changed"] is False
    ping = run(["ip", "netns", "exec", netns_pair.b, "ping", "-c", "3", "-q", netns_pair.ip_a])
    avg_ms = float(ping.stdout.strip().splitlines()[-1].split("/")[4])
    assert 95 <= avg_ms <= 130, ping.stdout


def test_a_container_is_shaped_and_cannot_unshape_itself(busybox_container, tmp_path):
    args = {"container": busybox_container, "testbed": TEST_TESTBED, "participant": "client_1",
            "up_rate_bps": 2 * MBIT, "down_rate_bps": 8 * MBIT}
    result = run_flbed_link(tmp_path, args)
    assert result["changed"] is True, result
    assert result["commands"][0].startswith("nsenter -t %d -n tc qdisc add dev eth0 root"
                                            % container_pid(busybox_container))
    assert run_flbed_link(tmp_path, args)["changed"] is False

    # The container's processes run with Docker's default capabilities, without NET_ADMIN.
    pid = str(container_pid(busybox_container))
    with open("/proc/%s/status" % pid) as status:
        caps = dict(line.split(":\t") for line in status.read().splitlines() if "\t" in line)
    assert not int(caps["CapBnd"], 16) & (1 << CAP_NET_ADMIN), caps["CapBnd"]

    # A process inside the container tries to drop the download shaping (busybox's ip)...
    inside = run(["docker", "exec", busybox_container, "ip", "link", "del", "ifb-flbed"],
                 check=False)
    assert inside.returncode != 0 and "not permitted" in inside.stderr.lower(), inside
    # ...and the upload shaping, with the host's full tc (busybox's tc cannot delete), run as
    # root in the container's namespace but without NET_ADMIN, as the container's root is.
    as_container = ["nsenter", "-t", pid, "-n", "setpriv", "--inh-caps=-net_admin",
                    "--bounding-set=-net_admin", "tc", "qdisc", "del", "dev", "eth0", "root"]
    refused = run(as_container, check=False)
    assert refused.returncode != 0 and "not permitted" in refused.stderr.lower(), refused
    assert sorted(q["kind"] for q in qdiscs_in_container(busybox_container)) == [
        "ingress", "tbf"]
    assert qdiscs_in_container(busybox_container, "ifb-flbed")[0]["kind"] == "tbf"

    # With NET_ADMIN the very same commands work: the capability, not the command, stopped
    # them. (nsenter -m runs the container's own busybox.)
    run(["nsenter", "-t", pid, "-n", "-m", "ip", "link", "del", "ifb-flbed"])
    run(as_container[:4] + as_container[7:])
    assert [q["kind"] for q in qdiscs_in_container(busybox_container)] == ["noqueue",
                                                                          "ingress"]


def test_a_missing_container_lists_the_testbeds_containers(busybox_container, tmp_path):
    result = run_flbed_link(tmp_path, {"container": "flbedtest-absent", "testbed": TEST_TESTBED,
                                       "up_rate_bps": MBIT})
    assert result["failed"] is True
    assert "container 'flbedtest-absent' does not exist" in result["msg"]
    assert "%s (running)" % busybox_container in result["msg"]

    gone = run_flbed_link(tmp_path, {"container": "flbedtest-absent", "state": "absent"})
    assert gone["changed"] is False and "failed" not in gone
