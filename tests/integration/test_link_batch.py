"""flbed_link's batch form (links) through real Ansible on the real kernel: several network
namespaces shaped in one module run. Needs root."""

import pytest

from .conftest_link import NetnsPair, require_root, run_flbed_link

pytestmark = pytest.mark.integration

MBIT = 10 ** 6


@pytest.fixture
def three_pairs():
    require_root()
    pairs = [NetnsPair("batch%d" % i).create() for i in range(3)]
    yield pairs
    for pair in pairs:
        pair.delete()


def kinds(pair, dev="eth0"):
    return sorted(q["kind"] for q in pair.tc_json("qdisc", "show", "dev", dev)
                  if q["kind"] not in ("noqueue", "pfifo_fast"))


def batch(pairs, rates_mbit):
    return {"links": [{"netns": pair.a, "participant": "client_%d" % i,
                       "up_rate_bps": up * MBIT, "down_rate_bps": down * MBIT}
                      for i, (pair, (up, down)) in enumerate(zip(pairs, rates_mbit))]}


def test_four_step_idempotence_of_a_batch(three_pairs, tmp_path):
    args = batch(three_pairs, [(5, 20), (20, 50), (1, 2)])

    first_check = run_flbed_link(tmp_path, args, check=True)
    assert first_check["changed"] is True, first_check
    assert [link["changed"] for link in first_check["links"]] == [True, True, True]
    assert all(kinds(pair) == [] for pair in three_pairs), "check mode must change nothing"
    assert [d["before_header"] for d in first_check["diff"]] == [
        "client_0", "client_1", "client_2"]
    assert first_check["diff"][1]["after"]["download"]["rate_bps"] == 50 * MBIT

    applied = run_flbed_link(tmp_path, args)
    assert applied["changed"] is True, applied
    assert applied["commands"] == first_check["commands"]
    assert applied["not_applied"] == {"client_0": [], "client_1": [], "client_2": []}
    for pair, (up, down) in zip(three_pairs, [(5, 20), (20, 50), (1, 2)]):
        assert kinds(pair) == ["ingress", "tbf"]
        assert pair.tc_json("qdisc", "show", "dev", "eth0")[0]["options"]["rate"] == \
            up * MBIT // 8
        assert pair.tc_json("qdisc", "show", "dev", "ifb-flbed")[0]["options"]["rate"] == \
            down * MBIT // 8

    second_check = run_flbed_link(tmp_path, args, check=True)
    assert second_check["changed"] is False and second_check["commands"] == [], second_check
    again = run_flbed_link(tmp_path, args)
    assert again["changed"] is False and again["commands"] == [], again
    assert [d["before"] for d in again["diff"]] == [d["after"] for d in again["diff"]] == [
        link["link"] for link in applied["links"]]


def test_a_batch_changes_only_the_link_that_differs(three_pairs, tmp_path):
    rates = [(5, 20), (20, 50), (1, 2)]
    run_flbed_link(tmp_path, batch(three_pairs, rates))
    changed = run_flbed_link(tmp_path, batch(three_pairs, [(5, 20), (20, 30), (1, 2)]))
    assert [link["changed"] for link in changed["links"]] == [False, True, False]
    assert [c.split(" ", 2)[2] for c in changed["commands"]] == [
        "tc qdisc del dev ifb-flbed root",
        "tc qdisc add dev ifb-flbed root handle 1: tbf rate 30000000bit burst 16600b "
        "limit 391600b"]

    removed = run_flbed_link(tmp_path, dict(batch(three_pairs, rates), state="absent"))
    assert [link["changed"] for link in removed["links"]] == [True, True, True]
    assert all(kinds(pair) == [] and "ifb-flbed" not in pair.link_names()
               for pair in three_pairs)


def test_bad_entries_are_all_named_and_nothing_changes(three_pairs, tmp_path):
    args = batch(three_pairs, [(5, 20), (20, 50), (1, 2)])
    args["links"][1]["up_rate_bps"] = -1
    args["links"].append({"netns": "flbedtest-no-such-ns", "participant": "client_9"})
    result = run_flbed_link(tmp_path, args)
    assert result["failed"] is True
    assert result["msg"].startswith("2 of 4 links failed:")
    assert "participant 'client_1'" in result["msg"] and "up_rate_bps=-1" in result["msg"]
    assert "participant 'client_9'" in result["msg"]
    assert "network namespace 'flbedtest-no-such-ns' does not exist" in result["msg"]
    assert all(kinds(pair) == [] for pair in three_pairs)


def test_batch_refuses_per_target_options_beside_links_and_duplicates(three_pairs, tmp_path):
    args = dict(batch(three_pairs[:1], [(5, 20)]), up_rate_bps=MBIT)
    beside = run_flbed_link(tmp_path, args)
    assert beside["failed"] is True and "up_rate_bps in each entry of links" in beside["msg"]

    twice = batch([three_pairs[0], three_pairs[0]], [(5, 20), (1, 2)])
    duplicate = run_flbed_link(tmp_path, twice)
    assert duplicate["failed"] is True
    assert "participant 'client_1'" in duplicate["msg"] and "listed twice" in duplicate["msg"]
    assert kinds(three_pairs[0]) == []
