"""How the watch tells a stuck testbed from a slow one, and whom it names (flbed_progress)."""

import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "plugins" / "module_utils"))

import flbed_progress as progress  # noqa: E402

LAUNCHED = 1000.0
CLIENT_LOG = (
    "2026-12-03 10:00:00,000 (client:451) INFO: Client (address c:50052) is assigned with #2.\n"
    "2026-12-03 10:00:01,000 (client:354) INFO: {'Role': 'Client #2', 'Round': 0, "
    "'Results_raw': {'train_loss': 1.0}}\n"
    "2026-12-03 10:00:02,000 (client:354) INFO: {'Role': 'Client #2', 'Round': 1, "
    "'Results_raw': {'train_loss': 0.5}}\n")


def sample(out=0, cpu_s=0.0, link=0, tx=0, running=True):
    return {"running": running, "out_bytes": out, "cpu_ns": int(cpu_s * 1e9),
            "link_bytes": link, "tx_bytes": tx}


def looks(samples, start=LAUNCHED, step_s=1.0, cpu_pct=2.0):
    """The record after one look per sample, step_s apart."""
    record = None
    for index, seen in enumerate(samples):
        record = progress.update(record, seen, start + index * step_s, LAUNCHED, cpu_pct)
    return record


def test_the_log_says_whether_a_client_joined_and_its_last_round(tmp_path):
    log = tmp_path / "out" / "flbed" / "exp_print.log"
    log.parent.mkdir(parents=True)
    log.write_text(CLIENT_LOG.splitlines(keepends=True)[0])
    record = progress.fresh_record(LAUNCHED, LAUNCHED)
    size = progress.read_outputs(str(tmp_path / "out"), record)
    assert size == log.stat().st_size and record["joined"] and record["round"] is None

    log.write_text(CLIENT_LOG)  # later lines are read from where the last look stopped
    assert progress.read_outputs(str(tmp_path / "out"), record) == len(CLIENT_LOG)
    assert record["round"] == 1


def test_output_that_grows_is_progress():
    record = looks([sample(out=10), sample(out=20)])
    assert record["active"] == "output" and record["last_active_at"] == LAUNCHED + 1


def test_computing_is_progress_but_an_idle_wake_up_is_not():
    busy = looks([sample(cpu_s=0.0), sample(cpu_s=3.0)], step_s=6.0)
    assert busy["active"] == "cpu" and busy["last_active_at"] == LAUNCHED + 6
    idle = looks([sample(cpu_s=0.0), sample(cpu_s=0.003)], step_s=6.0)
    assert idle["active"] is None and idle["last_active_at"] == LAUNCHED


def test_cpu_use_tells_nothing_where_participants_spin():
    record = looks([sample(cpu_s=0.0), sample(cpu_s=6.0)], step_s=6.0, cpu_pct=0)
    assert record["active"] is None


def test_a_transfer_is_progress_a_trickle_is_not():
    upload = looks([sample(link=0), sample(link=16000 * 6)], step_s=6.0)
    assert upload["active"] == "link"
    trickle = looks([sample(link=0), sample(link=74 * 3)], step_s=6.0)
    assert trickle["active"] is None


def test_rates_are_judged_over_a_window_not_between_two_close_looks():
    record = looks([sample(cpu_s=0.0), sample(cpu_s=0.05)], step_s=0.5)
    assert record["active"] is None and record["cpu_ns"] == 0  # window not over yet


def test_a_record_of_an_earlier_run_is_not_taken_over():
    old = dict(progress.fresh_record(1.0, 1.0), joined=True, round=7)
    record = progress.update(old, sample(), LAUNCHED + 5, LAUNCHED, 2.0)
    assert record["launched_at"] == LAUNCHED and not record["joined"]
    assert record["last_active_at"] == LAUNCHED + 5


def test_quiet_time_counts_from_the_last_sign_of_any_participant():
    records = [dict(progress.fresh_record(LAUNCHED, LAUNCHED), last_active_at=at)
               for at in (1010.0, 1040.0)]
    assert progress.quiet_s(records, 1100.0) == 60.0
    assert progress.quiet_s([], 1100.0) is None


def participant(name, role="client", **record):
    state = dict(progress.fresh_record(LAUNCHED, LAUNCHED), **record)
    return {"name": name, "role": role, "progress": state}


def names(found):
    return [entry["name"] for entry, _ in found]


def test_clients_that_never_joined_are_named():
    found = progress.culprits([participant("server", "server"),
                               participant("client-1", joined=True),
                               participant("client-2")], None, 61.0)
    assert names(found) == ["client-2"]
    assert found[0][1].startswith("never joined the server (nothing moved for 61 s")


def test_clients_behind_the_run_are_named():
    found = progress.culprits([participant("server", "server"),
                               participant("client-1", joined=True, round=4),
                               participant("client-2", joined=True, round=3)], 5, 60.0)
    assert names(found) == ["client-2"]
    assert "its last round is 3 while the run reached round 4" in found[0][1]


def test_a_client_whose_update_did_not_get_out_is_named():
    found = progress.culprits([
        participant("server", "server"),
        participant("client-1", joined=True, round=4, last_output_at=1050.0,
                    last_sent_at=1050.5),
        participant("client-2", joined=True, round=4, last_output_at=1061.0,
                    last_sent_at=1049.0)], 5, 60.0)
    assert names(found) == ["client-2"]
    assert "logged after the last message it sent" in found[0][1]


def test_sending_is_noted_per_look_above_chatter():
    record = looks([sample(tx=0), sample(tx=40), sample(tx=40 + 900)])
    assert record["last_sent_at"] == LAUNCHED + 2


def test_output_is_noted_when_it_grows():
    record = looks([sample(out=5), sample(out=5), sample(out=9), sample(out=9)])
    assert record["last_output_at"] == LAUNCHED + 2


def test_without_a_client_to_blame_the_server_is_named_and_says_so():
    found = progress.culprits([participant("server", "server"),
                               participant("client-1", joined=True, round=2)], None, 70.0)
    assert names(found) == ["server"]
    assert "cannot be told" in found[0][1]
