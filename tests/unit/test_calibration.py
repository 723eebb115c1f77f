"""Profiles that state a throughput: host records, quotas per host, and the plan's checks."""

import pytest

from flbed import calibration, plan, schema
from flbed.errors import InputError
from flbed.inventory import Inventory

FS_CONFIG = {"data": {"type": "toy"}, "model": {"type": "lr"},
             "federate": {"total_round_num": 3}}
TESTBED = {
    "name": "calib",
    "federatedscope": {"config": FS_CONFIG},
    "profiles": {"phone": {"memory": "1g", "throughput": "200 steps/s",
                           "link": {"up": "10mbit"}}},
    "server": {"profile": "smartphone_high", "host": "fast"},
    "clients": [{"profile": "phone", "host": "fast"}, {"profile": "phone", "host": "slow"}],
}
TWO_HOSTS = Inventory({"fast": {"flbed_host_cpus": 2}, "slow": {"flbed_host_cpus": 2}},
                      {"all": ["fast", "slow"]})


def measured(steps_per_s_one_cpu, host_cpus=2):
    """A host that trains linearly in its quota up to its cores."""
    quotas = [0.1, 0.25, 0.5, 1.0, 0]
    return {"host_cpus": host_cpus, "warm": {"model": "lr"},
            "points": [{"cpus": q, "steps_per_s": steps_per_s_one_cpu * (q or host_cpus)}
                       for q in quotas]}


def keep(runs_root, host, steps_per_s_one_cpu):
    key = calibration.workload_key(FS_CONFIG)
    record = calibration.make_record(host, key, FS_CONFIG, "flbed/participant:x",
                                     measured(steps_per_s_one_cpu))
    return calibration.write_record(str(runs_root), record)


def make(runs_root, data=TESTBED, inventory=TWO_HOSTS, **kw):
    testbed = schema.parse_testbed(data, environ={})
    return plan.make_plan(testbed, inventory, run_id="x", runs_root=str(runs_root), **kw)


def test_one_throughput_becomes_different_quotas_on_hosts_of_different_speed(tmp_path):
    keep(tmp_path, "fast", 1000.0)
    keep(tmp_path, "slow", 250.0)

    server, on_fast, on_slow = make(tmp_path)["participants"]

    assert server["cpus"] == 1.0 and server["cpus_from"] == plan.CPUS_FROM_PROFILE
    assert on_fast["cpus"] == 0.2 and on_fast["cpus_from"] == plan.CPUS_FROM_CALIBRATION
    assert on_slow["cpus"] == 0.8
    assert on_fast["throughput_steps_per_s"] == on_slow["throughput_steps_per_s"] == 200.0


def test_the_quota_follows_the_measured_curve_between_points():
    record = {"host": "h", "host_cpus": 2, "points": [
        {"cpus": 0.5, "steps_per_s": 100.0}, {"cpus": 1.0, "steps_per_s": 150.0},
        {"cpus": 0, "steps_per_s": 170.0}]}

    assert calibration.quota_for(50.0, record) == 0.25        # first segment, from the origin
    assert calibration.quota_for(125.0, record) == 0.75
    assert calibration.quota_for(160.0, record) == 1.5        # towards full speed on 2 cores
    with pytest.raises(ValueError, match="at most 170 steps/s with all its 2 cores"):
        calibration.quota_for(171.0, record)


def test_a_slower_measurement_at_a_higher_quota_is_taken_as_noise():
    points = [{"cpus": 0.5, "steps_per_s": 100.0}, {"cpus": 1.0, "steps_per_s": 90.0}]

    assert calibration.curve(points, 2) == [(0.0, 0.0), (0.5, 100.0), (1.0, 100.0)]


def test_a_host_without_calibration_is_refused_naming_the_command(tmp_path):
    keep(tmp_path, "fast", 1000.0)

    with pytest.raises(InputError) as caught:
        make(tmp_path)

    assert caught.value.problems == [
        "clients[1].profile: 'phone' states its compute as 200 steps/s, but host 'slow' has no "
        "calibration for this testbed's model; run `flbed calibrate FILE -i INVENTORY` first"]


def test_calibrating_plans_without_records(tmp_path):
    made = make(tmp_path, calibrating=True)

    assert [p["cpus"] for p in made["participants"]] == [1.0, None, None]
    assert made["workload"]["key"] == calibration.workload_key(FS_CONFIG)
    assert made["workload"]["fs_config"]["distribute"]["role"] == "client"


def test_a_host_too_slow_for_the_throughput_is_refused(tmp_path):
    keep(tmp_path, "fast", 1000.0)
    keep(tmp_path, "slow", 50.0)        # 100 steps/s with both cores

    with pytest.raises(InputError) as caught:
        make(tmp_path)

    assert caught.value.problems[0].startswith(
        "clients[1].profile: 'phone' asks for 200 steps/s, but host 'slow' trains at most "
        "100 steps/s with all its 2 cores")


def test_another_model_needs_its_own_calibration(tmp_path):
    keep(tmp_path, "fast", 1000.0)
    keep(tmp_path, "slow", 250.0)
    other = {**TESTBED, "federatedscope": {"config": {**FS_CONFIG,
                                                      "model": {"type": "convnet2"}}}}

    with pytest.raises(InputError, match="has no calibration for this testbed's model"):
        make(tmp_path, other)


def test_a_native_host_gets_no_quota_and_a_warning_when_its_speed_differs(tmp_path):
    inventory = Inventory({"fast": {"flbed_host_cpus": 2},
                           "slow": {"flbed_host_cpus": 2, "flbed_native_compute": True}},
                          {"all": ["fast", "slow"]})
    keep(tmp_path, "fast", 1000.0)
    keep(tmp_path, "slow", 50.0)

    made = make(tmp_path, inventory=inventory)

    on_slow = made["participants"][2]
    assert on_slow["cpus"] is None and on_slow["cpus_from"] == plan.CPUS_NATIVE
    assert made["warnings"] == ["host 'slow' computes at its own speed, 100 steps/s, but "
                                "clients[1].profile 'phone' asks for 200 steps/s"]


@pytest.mark.parametrize("value, expected", [(12, 12.0), ("12 steps/s", 12.0), (0.5, 0.5)])
def test_a_throughput_is_a_number_of_steps_per_second(value, expected):
    data = {**TESTBED, "profiles": {"phone": {"memory": "1g", "throughput": value}}}

    assert schema.parse_testbed(data, environ={}).profiles["phone"].throughput_steps_per_s \
        == expected


@pytest.mark.parametrize("value, message", [
    ("fast", "profiles.phone.throughput: 'fast' is not a throughput"),
    (0, "profiles.phone.throughput: 0 is outside the throughput range"),
    (True, "profiles.phone.throughput: True is not a throughput"),
])
def test_a_bad_throughput_is_named(value, message):
    data = {**TESTBED, "profiles": {"phone": {"memory": "1g", "throughput": value}}}

    with pytest.raises(InputError) as caught:
        schema.parse_testbed(data, environ={})

    assert caught.value.problems[0].startswith(message)


def test_cpus_and_throughput_together_are_refused_but_extends_replaces_one_by_the_other():
    both = {**TESTBED, "profiles": {"phone": {"memory": "1g", "cpus": 1, "throughput": 5}}}
    with pytest.raises(InputError) as caught:
        schema.parse_testbed(both, environ={})
    assert caught.value.problems[0] == \
        "profiles.phone.throughput: give cpus or throughput, not both"

    derived = {**TESTBED, "profiles": {"phone": {"extends": "raspberry_pi", "throughput": 5}}}
    phone = schema.parse_testbed(derived, environ={}).profiles["phone"]
    assert phone.cpus is None and phone.throughput_steps_per_s == 5.0


def test_a_measurement_that_did_not_get_its_quota_is_flagged_as_busy():
    record = {"points": [{"cpus": 0.25, "steps_per_s": 50.0, "cpus_used": 0.24},
                         {"cpus": 1.0, "steps_per_s": 90.0, "cpus_used": 0.45},
                         {"cpus": 0.5, "steps_per_s": 99.0, "cpus_used": None},
                         {"cpus": 0.0, "steps_per_s": 210.0, "cpus_used": 1.0}]}
    assert [p["cpus"] for p in calibration.starved_points(record)] == [1.0]
