"""flbed_tc's one-process-per-namespace scripts: the state reader and the batch runner
(no root: the scripts are checked as text and, where a shell suffices, run with stand-in
`tc` and `ip` commands)."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "module_utils"))

import flbed_tc  # noqa: E402

DEV, IFB = "eth0", "ifb-flbed"
TBF = {"kind": "tbf", "handle": "1:", "root": True,
       "options": {"rate": 625000, "burst": 4100, "lat": 99840}}
LINKS = [{"ifname": "lo", "flags": ["UP"]}, {"ifname": "eth0", "flags": ["UP"]},
         {"ifname": "ifb-flbed", "flags": ["UP"]}]


def state_output(links=LINKS, qdiscs=(), filters=(), codes=(0, 0, 0)):
    parts = zip(flbed_tc.STATE_PARTS, (links, list(qdiscs), list(filters)), codes)
    return "".join("%s\n\n%s %s %d\n" % (json.dumps(body), flbed_tc.STATE_MARK, part, code)
                   for part, body, code in parts)


def test_state_script_reads_three_parts_each_closed_by_its_mark():
    script = flbed_tc.state_script("eth0")
    assert script.splitlines() == [
        "ip -j link show; echo; echo @@flbed-state links $?",
        "tc -j qdisc show; echo; echo @@flbed-state qdiscs $?",
        "tc -j filter show dev eth0 ingress; echo; echo @@flbed-state filters $?"]
    assert "'eth 0;x'" in flbed_tc.state_script("eth 0;x"), "interface names are quoted"


def test_state_from_parts_keeps_each_devices_qdiscs_apart():
    qdiscs = [dict(TBF, dev="eth0"), dict(TBF, dev="ifb-flbed",
                                           options=dict(TBF["options"], rate=2500000)),
              {"kind": "noqueue", "handle": "0:", "root": True, "dev": "lo"}]
    parts = flbed_tc.split_state_output(state_output(qdiscs=qdiscs))
    state = flbed_tc.state_from_parts(parts, DEV, IFB)
    assert state["upload"]["rate_bps"] == 5000000
    assert state["download"]["rate_bps"] == 20000000
    assert state["ifb_exists"] and not state["ingress_qdisc"]


@pytest.mark.parametrize("output, message", [
    (state_output(codes=(0, 0, 1)), "reading the filters failed with exit code 1"),
    (state_output().split(flbed_tc.STATE_MARK + " qdiscs")[0], "reading the qdiscs stopped"),
    (state_output().replace("[]", "[oops", 1), "the qdiscs are not JSON"),
])
def test_state_from_parts_names_the_part_that_went_wrong(output, message):
    with pytest.raises(ValueError, match=message):
        flbed_tc.state_from_parts(flbed_tc.split_state_output(output), DEV, IFB)


def test_interface_names_come_from_the_links_part():
    parts = flbed_tc.split_state_output(state_output())
    assert flbed_tc.interface_names(parts) == ["lo", "eth0", "ifb-flbed"]
    assert flbed_tc.interface_names({}) == []


def plumbing_and_shaping():
    wanted = flbed_tc.wanted_link({"up_rate_bps": 5000000, "down_rate_bps": 20000000})
    empty = flbed_tc.read_state([], [], LINKS[:2], [], IFB)
    return flbed_tc.plan_present(wanted, empty, DEV, IFB)


def test_batch_script_groups_consecutive_commands_of_one_tool():
    script = flbed_tc.batch_script(plumbing_and_shaping())
    assert script == (
        "tc -batch - <<'FLBED_END' || exit $?\n"
        "qdisc add dev eth0 root handle 1: tbf rate 5000000bit burst 4100b limit 66600b\n"
        "FLBED_END\n"
        "ip -batch - <<'FLBED_END' || exit $?\n"
        "link add ifb-flbed type ifb\n"
        "link set dev ifb-flbed up\n"
        "FLBED_END\n"
        "tc -batch - <<'FLBED_END' || exit $?\n"
        "qdisc add dev eth0 handle ffff: ingress\n"
        "filter add dev eth0 parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred "
        "egress redirect dev ifb-flbed\n"
        "qdisc add dev ifb-flbed root handle 1: tbf rate 20000000bit burst 11600b "
        "limit 261600b\n"
        "FLBED_END\n")
    assert flbed_tc.batch_script([]) == ""
    with pytest.raises(ValueError, match="cannot batch 'sh'"):
        flbed_tc.batch_script([["sh", "-c", "true"]])


def run_with_fake_tools(tmp_path, script, failing_tool=None):
    """Run script with `tc` and `ip` that log their stdin, one of them failing if asked."""
    for tool in ("tc", "ip"):
        fake = tmp_path / tool
        code = 2 if tool == failing_tool else 0
        fake.write_text("#!/bin/sh\necho \"%s $*\" >> %s/log\ncat >> %s/log\nexit %d\n"
                        % (tool, tmp_path, tmp_path, code))
        fake.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (tmp_path, os.environ["PATH"]))
    proc = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    log = (tmp_path / "log").read_text() if (tmp_path / "log").exists() else ""
    return proc.returncode, log.splitlines()


def test_batch_script_feeds_each_tool_its_lines_in_order(tmp_path):
    code, log = run_with_fake_tools(tmp_path, flbed_tc.batch_script(plumbing_and_shaping()))
    assert code == 0
    assert [line for line in log if line.endswith("-batch -")] == [
        "tc -batch -", "ip -batch -", "tc -batch -"]
    assert log[1].startswith("qdisc add dev eth0 root") and log[3] == "link add ifb-flbed type ifb"


def test_batch_script_stops_at_the_first_failing_tool(tmp_path):
    script = flbed_tc.batch_script(plumbing_and_shaping()) + "echo after\n"
    code, log = run_with_fake_tools(tmp_path, script, failing_tool="ip")
    assert code == 2
    assert [line for line in log if line.endswith("-batch -")] == ["tc -batch -", "ip -batch -"]
