"""Command plans, tc -j parsing and validation of flbed_tc (no root, no Docker)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "module_utils"))

import flbed_tc  # noqa: E402

DEV, IFB = "eth0", "ifb-flbed"
PLUMBING = [
    "ip link add ifb-flbed type ifb",
    "ip link set dev ifb-flbed up",
    "tc qdisc add dev eth0 handle ffff: ingress",
    "tc filter add dev eth0 parent ffff: protocol all prio 1 u32 match u32 0 0 "
    "action mirred egress redirect dev ifb-flbed",
]
# What a fresh veth in a new namespace shows.
EMPTY = flbed_tc.read_state([{"kind": "noqueue", "handle": "0:", "root": True}], [],
                            [{"ifname": "lo"}, {"ifname": "eth0"}], [], IFB)


def plan_text(link, actual=EMPTY):
    wanted = flbed_tc.wanted_link(link)
    return flbed_tc.format_commands(flbed_tc.plan_present(wanted, actual, DEV, IFB))


def link(up, down, delay_ms=0, loss_pct=0, **more):
    return dict(up_rate_bps=up, down_rate_bps=down, delay_ms=delay_ms, loss_pct=loss_pct,
                **more)


# burst = rate/8/250 + 1600; queue limit = burst + max(100 ms of rate, 4 x 1514 B);
# netem limit = max(1000, rate x (delay + 2 jitter + 100 ms) in 1514-byte frames).
PROFILES = {
    "edge_server": (link(10 ** 9, 10 ** 9, 1, 0), [
        "tc qdisc add dev eth0 root handle 1: tbf rate 1000000000bit burst 501600b "
        "limit 13001600b",
        "tc qdisc add dev eth0 parent 1:1 handle 10: netem limit 8339 delay 1ms",
    ] + PLUMBING + [
        "tc qdisc add dev ifb-flbed root handle 1: tbf rate 1000000000bit burst 501600b "
        "limit 13001600b",
        "tc qdisc add dev ifb-flbed parent 1:1 handle 10: netem limit 8339 delay 1ms",
    ]),
    "smartphone_high": (link(50 * 10 ** 6, 100 * 10 ** 6, 20, 0.5), [
        "tc qdisc add dev eth0 root handle 1: tbf rate 50000000bit burst 26600b limit 651600b",
        "tc qdisc add dev eth0 parent 1:1 handle 10: netem limit 1000 delay 20ms "
        "loss random 0.5%",
    ] + PLUMBING + [
        "tc qdisc add dev ifb-flbed root handle 1: tbf rate 100000000bit burst 51600b "
        "limit 1301600b",
        "tc qdisc add dev ifb-flbed parent 1:1 handle 10: netem limit 1000 delay 20ms "
        "loss random 0.5%",
    ]),
    "smartphone_low": (link(5 * 10 ** 6, 20 * 10 ** 6, 50, 1), [
        "tc qdisc add dev eth0 root handle 1: tbf rate 5000000bit burst 4100b limit 66600b",
        "tc qdisc add dev eth0 parent 1:1 handle 10: netem limit 1000 delay 50ms "
        "loss random 1%",
    ] + PLUMBING + [
        "tc qdisc add dev ifb-flbed root handle 1: tbf rate 20000000bit burst 11600b "
        "limit 261600b",
        "tc qdisc add dev ifb-flbed parent 1:1 handle 10: netem limit 1000 delay 50ms "
        "loss random 1%",
    ]),
    "raspberry_pi": (link(20 * 10 ** 6, 50 * 10 ** 6, 10, 0.1), [
        "tc qdisc add dev eth0 root handle 1: tbf rate 20000000bit burst 11600b limit 261600b",
        "tc qdisc add dev eth0 parent 1:1 handle 10: netem limit 1000 delay 10ms "
        "loss random 0.1%",
    ] + PLUMBING + [
        "tc qdisc add dev ifb-flbed root handle 1: tbf rate 50000000bit burst 26600b "
        "limit 651600b",
        "tc qdisc add dev ifb-flbed parent 1:1 handle 10: netem limit 1000 delay 10ms "
        "loss random 0.1%",
    ]),
    "iot_minimal": (link(128000, 384000, 300, 5), [
        "tc qdisc add dev eth0 root handle 1: tbf rate 128000bit burst 1664b limit 7720b",
        "tc qdisc add dev eth0 parent 1:1 handle 10: netem limit 1000 delay 300ms "
        "loss random 5%",
    ] + PLUMBING + [
        "tc qdisc add dev ifb-flbed root handle 1: tbf rate 384000bit burst 1792b limit 7848b",
        "tc qdisc add dev ifb-flbed parent 1:1 handle 10: netem limit 1000 delay 300ms "
        "loss random 5%",
    ]),
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_plan_of_each_built_in_profile(profile):
    wanted_link, expected = PROFILES[profile]
    assert plan_text(wanted_link) == expected


def test_smallest_rate_keeps_a_full_frame_in_the_bucket_and_four_in_the_queue():
    assert plan_text(link(8000, 0)) == [
        "tc qdisc add dev eth0 root handle 1: tbf rate 8000bit burst 1604b limit 7660b"]
    assert flbed_tc.burst_bytes(8000) > flbed_tc.FRAME_BYTES


def test_gigabit_burst_covers_a_timer_tick():
    assert plan_text(link(0, 10 ** 9)) == PLUMBING + [
        "tc qdisc add dev ifb-flbed root handle 1: tbf rate 1000000000bit burst 501600b "
        "limit 13001600b"]
    assert flbed_tc.burst_bytes(10 ** 9) >= 10 ** 9 / 8 / flbed_tc.KERNEL_HZ


@pytest.mark.parametrize("rate_bps", [8000, 128000, 10 ** 6, 10 ** 8, 10 ** 9])
def test_queue_delay_is_bounded_and_holds_several_frames(rate_bps):
    queued = flbed_tc.queue_limit_bytes(rate_bps) - flbed_tc.burst_bytes(rate_bps)
    assert queued >= flbed_tc.QUEUE_MIN_FRAMES * flbed_tc.FRAME_BYTES
    if rate_bps >= 10 ** 6:
        assert queued * 8 / rate_bps <= flbed_tc.QUEUE_TIME_MS / 1000.0


def test_unshaped_link_plans_nothing_and_removes_leftovers():
    assert plan_text(link(0, 0)) == []
    leftover = dict(EMPTY, ingress_qdisc=True, ifb_exists=True)
    assert plan_text(link(0, 0), leftover) == [
        "tc qdisc del dev eth0 ingress", "ip link del dev ifb-flbed"]


def test_netem_without_rate_sits_at_the_root_with_all_impairments():
    wanted = link(0, 0, 40, 2, jitter_ms=5, jitter_distribution="pareto",
                  loss_correlation_pct=25, duplicate_pct=1, corrupt_pct=0.1, reorder_pct=3)
    text = plan_text(wanted)
    netem = ("netem limit 1000 delay 40ms 5ms distribution pareto loss random 2% 25% "
             "duplicate 1% corrupt 0.1% reorder 3%")
    assert text == ["tc qdisc add dev eth0 root handle 10: " + netem] + PLUMBING + [
        "tc qdisc add dev ifb-flbed root handle 10: " + netem]


def test_uniform_jitter_uses_netems_builtin_distribution():
    text = plan_text(link(10 ** 6, 0, 40, jitter_ms=5, jitter_distribution="uniform"))
    assert text[1].endswith("netem limit 1000 delay 40ms 5ms")


def test_skipped_settings_are_left_out():
    wanted = flbed_tc.wanted_link(link(10 ** 6, 10 ** 6, 20, 1), skip=["delay_ms", "loss_pct"])
    assert wanted["upload"]["netem"] is None and wanted["download"]["netem"] is None
    no_ifb = flbed_tc.wanted_link(link(10 ** 6, 10 ** 6), download_possible=False)
    assert no_ifb["download"] is None and no_ifb["upload"]["rate_bps"] == 10 ** 6


# ------------------------------------------------------------------ tc -j samples
# Captured on the build machine (iproute2 6.1, kernel 6.18) after applying the plans above.

TBF_1MBIT = [{"kind": "tbf", "handle": "1:", "root": True, "refcnt": 3,
              "options": {"rate": 125000, "burst": 2100, "lat": 83200}},
             {"kind": "ingress", "handle": "ffff:", "parent": "ffff:fff1", "options": {}}]
TBF_1GBIT = [{"kind": "tbf", "handle": "1:", "root": True, "refcnt": 2,
              "options": {"rate": 125000000, "burst": 501500, "lat": 195988}}]
# As flbed_link left them for up 1 mbit / down 1 gbit.
APPLIED_1MBIT = [{"kind": "tbf", "handle": "1:", "root": True, "refcnt": 3,
                  "options": {"rate": 125000, "burst": 2100, "lat": 100000}}, TBF_1MBIT[1]]
APPLIED_1GBIT_IFB = [{"kind": "tbf", "handle": "1:", "root": True, "refcnt": 2,
                      "options": {"rate": 125000000, "burst": 501500, "lat": 100000}}]
TBF_WITH_PFIFO_CHILD = [TBF_1MBIT[0], {"kind": "pfifo", "handle": "10:", "parent": "1:1",
                                       "options": {"limit": 50}}]
FILTERS = [
    {"parent": "ffff:", "protocol": "all", "pref": 1, "kind": "u32", "chain": 0},
    {"parent": "ffff:", "protocol": "all", "pref": 1, "kind": "u32", "chain": 0,
     "options": {"fh": "800:", "ht_divisor": 1}},
    {"parent": "ffff:", "protocol": "all", "pref": 1, "kind": "u32", "chain": 0,
     "options": {"fh": "800::800", "order": 2048, "key_ht": "800", "bkt": "0",
                 "not_in_hw": True, "match": {"value": "0", "mask": "0", "offmask": "",
                                              "off": 0},
                 "actions": [{"order": 1, "kind": "mirred", "mirred_action": "redirect",
                              "direction": "egress", "to_dev": "ifb-flbed",
                              "control_action": {"type": "stolen"}, "index": 1, "ref": 1,
                              "bind": 1}]}}]
IFB_LINK = {"ifindex": 4, "ifname": "ifb-flbed", "flags": ["BROADCAST", "NOARP", "UP",
                                                           "LOWER_UP"], "mtu": 1500}
# netem is missing from the build machine's kernel, so this sample follows the JSON that
# iproute2's q_netem.c prints: seconds for times, fractions for percentages.
NETEM_CHILD = {"kind": "netem", "handle": "10:", "parent": "1:1",
               "options": {"limit": 1000, "delay": {"delay": 0.02, "jitter": 0.005},
                           "loss-random": {"loss": 0.005, "correlation": 0.25},
                           "duplicate": {"duplicate": 0.01}, "reorder": {"reorder": 0.03},
                           "corrupt": {"corrupt": 0.001}}}


def test_parse_tbf_gives_rate_burst_and_queue_limit():
    assert flbed_tc.parse_direction(TBF_1MBIT) == {
        "rate_bps": 1000000, "burst_bytes": 2100, "queue_limit_bytes": 12500, "netem": None}
    # The kernel keeps the burst as a transmission time: 501600 B comes back as 501500 B.
    parsed = flbed_tc.parse_direction(TBF_1GBIT)
    assert parsed["queue_limit_bytes"] == 25000000
    assert flbed_tc.direction_matches(
        dict(parsed, burst_bytes=501600, queue_limit_bytes=25000000), parsed)


def test_parse_default_and_foreign_roots():
    assert flbed_tc.parse_direction([]) is None
    assert flbed_tc.parse_direction([{"kind": "pfifo_fast", "handle": "0:", "root": True}]) \
        is None
    assert flbed_tc.parse_direction([{"kind": "htb", "handle": "1:", "root": True}]) == \
        {"foreign": "htb"}
    assert flbed_tc.parse_direction(TBF_WITH_PFIFO_CHILD) == {"foreign": "tbf with pfifo child"}


def test_parse_netem_child_in_milliseconds_and_percent():
    netem = flbed_tc.parse_direction([TBF_1MBIT[0], NETEM_CHILD])["netem"]
    assert netem == {"delay_ms": 20.0, "jitter_ms": 5.0, "jitter_distribution": None,
                     "loss_pct": 0.5, "loss_correlation_pct": 25.0, "duplicate_pct": 1.0,
                     "corrupt_pct": 0.1, "reorder_pct": 3.0, "limit_packets": 1000}


def test_read_state_recognises_flbeds_download_plumbing():
    state = flbed_tc.read_state(TBF_1MBIT, FILTERS, [IFB_LINK], TBF_1GBIT, IFB)
    assert state["ingress_qdisc"] and state["redirect_ok"] and state["ifb_up"]
    assert state["download"]["rate_bps"] == 10 ** 9
    assert not flbed_tc.redirects_to(FILTERS, "ifb-other")
    assert not flbed_tc.redirects_to(FILTERS + FILTERS[2:], IFB)


def test_matching_state_plans_nothing_and_a_rate_change_rebuilds_one_direction():
    applied = link(10 ** 6, 10 ** 9)
    wanted = flbed_tc.wanted_link(applied)
    up = flbed_tc.shaping_commands(DEV, wanted["upload"])
    assert up == [["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "tbf",
                   "rate", "1000000bit", "burst", "2100b", "limit", "14600b"]]
    state = flbed_tc.read_state(APPLIED_1MBIT, FILTERS, [IFB_LINK], APPLIED_1GBIT_IFB, IFB)
    assert flbed_tc.plan_present(wanted, state, DEV, IFB) == []

    faster = flbed_tc.wanted_link(link(2 * 10 ** 6, 10 ** 9))
    assert flbed_tc.format_commands(flbed_tc.plan_present(faster, state, DEV, IFB)) == [
        "tc qdisc del dev eth0 root",
        "tc qdisc add dev eth0 root handle 1: tbf rate 2000000bit burst 2600b limit 27600b"]


def test_netem_difference_is_detected_but_distribution_is_not_compared():
    wanted = flbed_tc.wanted_link(dict(link(10 ** 6, 0, 20, 0.5), jitter_ms=5,
                                       loss_correlation_pct=25, duplicate_pct=1,
                                       corrupt_pct=0.1, reorder_pct=3))["upload"]
    actual = flbed_tc.parse_direction([
        {"kind": "tbf", "handle": "1:", "root": True,
         "options": {"rate": 125000, "burst": 2100, "lat": 100000}}, NETEM_CHILD])
    assert flbed_tc.direction_matches(wanted, actual)
    wanted["netem"]["jitter_distribution"] = "pareto"
    assert flbed_tc.direction_matches(wanted, actual)
    wanted["netem"]["loss_pct"] = 0.6
    assert not flbed_tc.direction_matches(wanted, actual)


def test_broken_plumbing_is_rebuilt_whole():
    state = flbed_tc.read_state([], [], [dict(IFB_LINK, flags=["BROADCAST"])], [], IFB)
    text = plan_text(link(0, 10 ** 6), state)
    assert text[:1] == ["ip link del dev ifb-flbed"]
    assert text[1:5] == PLUMBING


def test_absent_removes_root_ingress_and_ifb():
    state = flbed_tc.read_state(TBF_1MBIT, FILTERS, [IFB_LINK], TBF_1GBIT, IFB)
    assert flbed_tc.format_commands(flbed_tc.plan_absent(state, DEV, IFB)) == [
        "tc qdisc del dev eth0 root", "tc qdisc del dev eth0 ingress",
        "ip link del dev ifb-flbed"]
    assert flbed_tc.plan_absent(EMPTY, DEV, IFB) == []


def test_views_for_the_diff():
    wanted = flbed_tc.wanted_link(link(10 ** 6, 0, 20, 0.5))
    assert flbed_tc.link_view(wanted["upload"], None) == {
        "upload": {"rate_bps": 1000000, "burst_bytes": 2100, "queue_limit_bytes": 14600,
                   "delay_ms": 20.0, "loss_pct": 0.5, "netem_limit_packets": 1000},
        "download": "unshaped"}
    assert flbed_tc.direction_view({"foreign": "htb"}) == {"foreign_qdisc": "htb"}


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("bad, message", [
    ({"up_rate_bps": -1}, "up_rate_bps=-1 is not allowed; allowed: 0 (unshaped) or "
                          "8000..100000000000 bit/s"),
    ({"down_rate_bps": 4000}, "down_rate_bps=4000 is not allowed"),
    ({"loss_pct": 101}, "loss_pct=101 is not allowed; allowed: 0..100 (percent)"),
    ({"corrupt_pct": -0.5}, "corrupt_pct=-0.5 is not allowed; allowed: 0..100 (percent)"),
    ({"delay_ms": -3}, "delay_ms=-3 is not allowed; allowed: 0..60000 ms"),
    ({"jitter_ms": 5}, "jitter_ms=5 needs a delay; set delay_ms > 0"),
    ({"reorder_pct": 5}, "reorder_pct=5 needs a delay"),
    ({"jitter_ms": 5, "delay_ms": 10, "jitter_distribution": "gauss"},
     "jitter_distribution='gauss' is not allowed; allowed: normal, pareto, paretonormal, "
     "uniform"),
])
def test_validation_names_the_value_and_what_is_allowed(bad, message):
    errors = flbed_tc.validate_link(bad)
    assert len(errors) == 1 and errors[0].startswith(message)


def test_valid_links_pass():
    for wanted_link, _ in PROFILES.values():
        assert flbed_tc.validate_link(wanted_link) == []
    assert flbed_tc.validate_link({}) == []


def test_ifb_names_fit_the_kernels_limit():
    assert flbed_tc.ifb_name("eth0") == "ifb-flbed"
    assert flbed_tc.ifb_name("enp0s31f6") == "ifb-flbed-enp0s"
    assert len(flbed_tc.ifb_name("a-very-long-interface")) == 15
