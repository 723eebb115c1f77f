"""Unit tests of flbed results / compare: parsing real FederatedScope output (a finished run and
one with a client killed), targets, comparison with a known answer, the manifest, plots."""

import json
import os
import shutil

import pytest

from flbed import cli, plots, report
from flbed.errors import InputError
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "fs_outputs"


def make_run(root, fixture, names, status="succeeded", run_id="r1"):
    """A run directory laid out as flbed writes it, from a captured FederatedScope run.

    ``names`` maps participant names to the fixture's directory names.
    """
    run_dir = root / run_id
    participants = []
    for name, source in names.items():
        shutil.copytree(FIXTURES / fixture / source / "flbed",
                        run_dir / "participants" / name / "out" / "flbed")
        participants.append({"name": name, "role": "server" if name == "server" else "client",
                             "host": "localhost", "profile": "raspberry_pi",
                             "container": f"flbed-t-{name}"})
    (run_dir / "plan.json").write_text(json.dumps({"participants": participants,
                                                   "fs_source": "/nowhere/fs",
                                                   "fs_wait": "blocking",
                                                   "cpu_policy": "after_ready"}))
    (run_dir / "summary.json").write_text(json.dumps({
        "testbed": "t", "run_id": run_id, "status": status, "wall_time_s": 9.0,
        "participants": participants, "final_metrics": {}}))
    return run_dir


@pytest.fixture
def ok_run(tmp_path):
    return make_run(tmp_path, "ok", {"server": "server", "client-1": "client_1"})


@pytest.fixture
def failed_run(tmp_path):
    return make_run(tmp_path, "failed", {"server": "server", "client-1": "client_1",
                                         "client-2": "client_2"}, status="failed", run_id="r2")


def synthetic_run(root, run_id, losses, step_s):
    """A run whose server evaluated round k at (k + 1) * step_s with test_avg_loss losses[k],
    written in FederatedScope's formats."""
    server = root / run_id / "participants" / "server" / "out" / "flbed"
    server.mkdir(parents=True)
    log = ["2026-12-03 10:00:00,000 (server:843) INFO: ----------- Starting training "
           "(Round #0) -------------"]
    raw = []
    for round_id, loss in enumerate(losses):
        millis = int((round_id + 1) * step_s * 1000)
        stamp = f"2026-12-03 10:00:{millis // 1000:02d},{millis % 1000:03d}"
        log.append(f"{stamp} (server:615) INFO: {{'Role': 'Server #', 'Round': {round_id}, "
                   f"'Results_weighted_avg': {{'test_avg_loss': np.float64({loss})}}}}")
        raw.append(repr({"Role": "Server #", "Round": round_id,
                         "Results_raw": {"test_avg_loss": [loss, loss]}}))
    (server / "exp_print.log").write_text("\n".join(log) + "\n")
    (server / "eval_results.raw").write_text("\n".join(raw) + "\n")
    (root / run_id / "plan.json").write_text(json.dumps(
        {"participants": [{"name": "server", "role": "server"}]}))
    return root / run_id


# ---------------------------------------------------------------- parsing real output

def test_rounds_of_a_finished_run_carry_metrics_and_times(ok_run):
    run = report.load_run(str(ok_run))
    assert [e["round"] for e in run.rounds] == [0, 1, 2, 3, 4]
    # Starting training at 16:59:37,242; round 0 evaluated at 16:59:41,649, round 4 at 42,554.
    assert run.rounds[0]["time_s"] == pytest.approx(4.407)
    assert run.rounds[-1]["time_s"] == pytest.approx(5.312)
    assert run.rounds[0]["metrics"]["test_avg_loss"] == pytest.approx(3.8776, abs=1e-4)
    losses = [e["metrics"]["test_avg_loss"] for e in run.rounds]
    assert losses == sorted(losses, reverse=True)


def test_client_updates_come_from_the_clients_training_lines(ok_run):
    run = report.load_run(str(ok_run))
    updates = run.updates["client-1"]
    assert sorted(updates) == [0, 1, 2, 3, 4]
    assert updates[0] == pytest.approx(3.956)   # 16:59:41,198 - 16:59:37,242
    assert updates[4] == pytest.approx(5.053)


def test_participants_of_a_finished_run_have_fs_system_metrics(ok_run):
    run = report.load_run(str(ok_run))
    client = next(p for p in run.participants if p["name"] == "client-1")
    assert client["fs_system_metrics"]["total_flops"] > 0
    assert not any("system_metrics" in gap for gap in run.missing)
    assert "no link_stats.json for client-1: its link was never sampled" in run.missing


def test_a_failed_run_yields_what_it_got_and_names_what_is_missing(failed_run):
    run = report.load_run(str(failed_run))
    assert [e["round"] for e in run.rounds] == [0]
    assert run.rounds[0]["time_s"] == pytest.approx(7.411)   # 17:00:31,918 - 17:00:24,507
    assert sorted(run.updates["client-2"]) == [0, 1]        # killed after its second update
    for name in ("server", "client-1", "client-2"):
        assert f"no system_metrics.log for {name}: it did not finish" in run.missing
    assert "round" in report.rounds_table(run)
    assert "client-2" in report.participants_table(run)


def test_a_cut_last_log_line_is_skipped(tmp_path):
    log = tmp_path / "exp_print.log"
    log.write_text("2026-12-03 10:00:01,000 (client:354) INFO: {'Role': 'Client #1', "
                   "'Round': 0, 'Results_raw': {'train_loss': 1.0}}\n"
                   "2026-12-03 10:00:02,000 (client:354) INFO: {'Role': 'Client #1', "
                   "'Round': 1, 'Results_raw': {'train_lo")
    assert list(report.client_update_times(str(log))) == [0]


def test_link_stats_and_resources_fill_the_participant_row(ok_run):
    folder = ok_run / "participants" / "client-1"
    (folder / "link_stats.json").write_text(json.dumps(
        {"up_bytes": 2048, "down_bytes": 4096, "qdisc_drops": 3}))
    (folder / "resources.csv").write_text(
        "time_s,cpu_pct,memory_bytes,unix_s\n1.0,40.0,1000,5.0\n2.0,60.0,3000,6.0\n"
        "3.0,,2000,7.0\n")
    run = report.load_run(str(ok_run))
    client = next(p for p in run.participants if p["name"] == "client-1")
    assert (client["up_bytes"], client["down_bytes"], client["qdisc_drops"]) == (2048, 4096, 3)
    assert client["cpu_mean_pct"] == 50.0
    assert client["memory_peak_bytes"] == 3000
    assert client["samples"] == 3
    assert "2.0 KiB" in report.participants_table(run)


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(InputError, match="is not a run directory"):
        report.load_run(str(tmp_path))


# ---------------------------------------------------------------- targets and compare

@pytest.mark.parametrize("text, expected", [
    ("test_loss<=0.5", ("test_loss", "<=", 0.5)),
    (" test_acc >= 0.9 ", ("test_acc", ">=", 0.9)),
    ("val_avg_loss<=1e-2", ("val_avg_loss", "<=", 0.01)),
])
def test_targets_parse(text, expected):
    assert report.parse_target(text) == expected


@pytest.mark.parametrize("text", ["test_loss<0.5", "test_loss=0.5", "<=0.5", "loss<=fast", ""])
def test_bad_targets_are_refused_with_the_rule(text):
    with pytest.raises(InputError, match="METRIC<=VALUE"):
        report.parse_target(text)


def test_compare_finds_when_each_run_reached_the_target(tmp_path):
    fast = synthetic_run(tmp_path, "fast", [3.0, 1.5, 0.9, 0.4], step_s=2.0)
    slow = synthetic_run(tmp_path, "slow", [3.0, 2.0, 1.2, 0.95, 0.5], step_s=3.0)
    never = synthetic_run(tmp_path, "never", [3.0, 2.5], step_s=1.0)
    result = report.compare([str(fast), str(slow), str(never)], "test_avg_loss<=1.0")
    reached = [(r["target_round"], r["target_time_s"]) for r in result["runs"]]
    assert reached == [(2, 6.0), (3, 12.0), (None, None)]
    assert [r["rounds"] for r in result["runs"]] == [4, 5, 2]
    assert [r["training_s"] for r in result["runs"]] == [8.0, 15.0, 2.0]
    rising = report.compare([str(fast), str(slow)], "test_avg_loss>=2.5")
    assert [r["target_round"] for r in rising["runs"]] == [0, 0]


def test_compare_of_a_real_run_and_a_failed_one(ok_run, failed_run):
    result = report.compare([str(ok_run), str(failed_run)], "test_avg_loss<=1.0")
    ok_row, failed_row = result["runs"]
    assert ok_row["target_round"] == 3
    assert ok_row["target_time_s"] == pytest.approx(5.065)   # 16:59:42,307 - 16:59:37,242
    assert failed_row["target_round"] is None and failed_row["rounds"] == 1
    text = report.compare_table(result)
    assert "target_round" in text.splitlines()[0] and "r2" in text


def test_compare_refuses_a_metric_no_run_has(ok_run):
    with pytest.raises(InputError, match="no run has the metric 'test_acc'"):
        report.compare([str(ok_run)], "test_acc>=0.9")


def test_cli_exit_codes(ok_run, tmp_path, capsys):
    assert cli.main(["compare", str(ok_run), "--target", "test_loss<0.5"]) == 2
    assert "is not a target" in capsys.readouterr().err
    assert cli.main(["results", str(tmp_path / "nothing")]) == 2
    assert cli.main(["results", str(ok_run), "--json", "--no-plots"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["rounds"]) == 5 and printed["plots"] == []
    assert (ok_run / "manifest.json").exists()


# ---------------------------------------------------------------- manifest

def test_manifest_gathers_versions_of_every_host(ok_run):
    (ok_run / "hosts").mkdir()
    (ok_run / "hosts" / "labpi.json").write_text(json.dumps({
        "host": "labpi", "docker_version": "20.10.24", "kernel_version": "6.6.0-rpi",
        "images": [{"Id": "sha256:abc", "RepoTags": ["flbed/participant:1"], "RepoDigests": []}],
        "image_labels": [{"flbed.fs.identity": "git:480b67de", "flbed.fs.source": "git+x"}]}))
    manifest = report.write_manifest(str(ok_run), {"training": 12.5})
    assert manifest["hosts"]["labpi"]["kernel_version"] == "6.6.0-rpi"
    assert manifest["hosts"]["labpi"]["images"][0]["id"] == "sha256:abc"
    assert manifest["federatedscope"]["commit"] == "480b67de"
    assert manifest["phases_s"] == {"training": 12.5}
    assert manifest["emulation"] == {"fs_wait": "blocking", "cpu_policy": "after_ready"}
    assert json.loads((ok_run / "manifest.json").read_text())["flbed_version"]


# ---------------------------------------------------------------- plots

def test_metric_figure_has_rounds_and_times(ok_run):
    run = report.load_run(str(ok_run))
    figure = plots.metric_figure(run, "test_avg_loss")
    by_round, by_time = figure.axes
    assert by_round.get_xlabel() == "round" and by_round.get_ylabel() == "test_avg_loss"
    assert by_time.get_xlabel() == "time since training started (s)"
    assert list(by_round.lines[0].get_xdata()) == [0, 1, 2, 3, 4]
    assert list(by_time.lines[0].get_xdata()) == [e["time_s"] for e in run.rounds]
    assert plots.metric_figure(run, "no_such_metric") is None


def test_bytes_figure_has_one_pair_of_bars_per_measured_participant(ok_run):
    for name, up in (("server", 3 * 2**20), ("client-1", 2**20)):
        (ok_run / "participants" / name / "link_stats.json").write_text(
            json.dumps({"up_bytes": up, "down_bytes": 2 * 2**20}))
    figure = plots.bytes_figure(report.load_run(str(ok_run)))
    axes = figure.axes[0]
    assert axes.get_ylabel() == "traffic (MiB)"
    assert [p.get_height() for p in axes.patches] == [3.0, 1.0, 2.0, 2.0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["server", "client-1"]


def test_timeline_has_each_clients_updates(failed_run):
    figure = plots.timeline_figure(report.load_run(str(failed_run)))
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["client-1", "client-2"]
    # client-1 survived into round 2; client-2 was killed after sending round 1
    assert [len(c.get_offsets()) for c in axes.collections] == [3, 2]
    assert axes.get_xlabel() == "time since training started (s)"


def test_write_plots_saves_readable_pngs(ok_run):
    (ok_run / "participants" / "server" / "resources.csv").write_text(
        "time_s,cpu_pct,memory_bytes,unix_s\n1,10,1048576,1\n2,20,2097152,2\n")
    run = report.load_run(str(ok_run))
    assert len(plots.resources_figure(run).axes[0].lines[0].get_xdata()) == 2
    paths = plots.write_plots(run)
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["metric_test_avg_loss.png", "metric_test_loss.png",
                     "metric_val_avg_loss.png", "metric_val_loss.png", "resources.png",
                     "timeline.png"]
    for path in paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(path) > 10_000
