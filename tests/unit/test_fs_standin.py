"""The FederatedScope stand-in (tests/fs_standin) against what the real framework writes.

The same output checks run on the real framework's captured output
(tests/fixtures/fs_outputs) and on a live stand-in run, so the stand-in cannot drift from
the real formats unnoticed. The stand-in runs as real processes talking TCP on 127.0.0.1;
it is put on the path under the name `federatedscope` through a symlink in a temporary
directory, so nothing needs installing.
"""

import ast
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="the stand-in needs PyYAML")

REPO = Path(__file__).resolve().parents[2]
STANDIN_SRC = REPO / "tests" / "fs_standin" / "standin"
FIXTURES = REPO / "tests" / "fixtures" / "fs_outputs"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NP_FLOAT = re.compile(r"np\.float64\(([^()]*)\)")
NAN = re.compile(r"\bnan\b")
SERVER_FILES = {"config.yaml", "exp_print.log", "eval_results.raw", "eval_results.log",
                "system_metrics.log"}
CLIENT_FILES = {"config.yaml", "exp_print.log", "eval_results.raw", "system_metrics.log"}
METRIC_KEYS = {"id", "fl_end_time_minutes", "total_model_size", "total_flops",
               "total_upload_bytes", "total_download_bytes", "global_convergence_round",
               "local_convergence_round", "global_convergence_time_minutes",
               "local_convergence_time_minutes"}
WAIT_S = 20.0


# ---------------------------------------------------------------- parsing, as flbed must


def parse_result_line(text):
    """A result line; numpy-2 scalars and nan (the server's 'Final' line) made literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return ast.literal_eval(NAN.sub("None", NP_FLOAT.sub(r"\1", text)))


def read_lines(path):
    return [line for line in path.read_text().splitlines() if line.strip()]


def log_messages(path):
    """Messages of the log lines that start with a timestamp, colours stripped."""
    pattern = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ \(\w+:\d+\) (\w+): (.*)$")
    found = (pattern.match(ANSI.sub("", line)) for line in path.read_text().splitlines())
    return [match.group(2) for match in found if match]


# ---------------------------------------------------------------- the shared expectations


def check_server_outdir(outdir):
    cfg = yaml.safe_load((outdir / "config.yaml").read_text())
    rounds, clients = cfg["federate"]["total_round_num"], cfg["federate"]["client_num"]
    assert {p.name for p in outdir.iterdir()} == SERVER_FILES
    assert cfg["outdir"] == str(outdir) or cfg["outdir"].endswith(outdir.name)

    raw = [parse_result_line(line) for line in read_lines(outdir / "eval_results.raw")]
    assert [r["Round"] for r in raw] == list(range(rounds)) + ["Final"] + [rounds] * clients
    assert {r["Role"] for r in raw[: rounds + 1]} == {"Server #"}
    assert sorted(r["Role"] for r in raw[rounds + 1:]) == [f"Client #{i + 1}"
                                                           for i in range(clients)]
    for line in raw[:rounds]:
        assert all(len(values) == clients for values in line["Results_raw"].values())
    test_losses = [sum(r["Results_raw"]["test_avg_loss"]) for r in raw[:rounds]]
    assert test_losses == sorted(test_losses, reverse=True)
    for line in read_lines(outdir / "eval_results.raw"):
        if "'Final'" not in line:
            ast.literal_eval(line)

    formatted = [parse_result_line(line) for line in read_lines(outdir / "eval_results.log")]
    assert [r["Round"] for r in formatted] == [r["Round"] for r in raw]
    assert {"Results_weighted_avg", "Results_avg"} <= set(formatted[0])

    metrics = [json.loads(line) for line in read_lines(outdir / "system_metrics.log")]
    assert [m["id"] for m in metrics] == [0, 0]
    assert all(set(m) == METRIC_KEYS for m in metrics)

    messages = log_messages(outdir / "exp_print.log")
    host, port = cfg["distribute"]["server_host"], cfg["distribute"]["server_port"]
    assert f"the output dir is {cfg['outdir']}" in messages
    assert f"Server: Listen to {host}:{port}..." in messages
    round_lines = [m for m in messages if "Round #" in m]
    assert round_lines[0] == "----------- Starting training (Round #0) -------------"
    assert round_lines[1:] == [
        f"----------- Starting a new training round (Round #{n}) -------------"
        for n in range(1, rounds)]
    assert "Server: Final evaluation is finished! Starting merging results." in messages
    return cfg


def check_client_outdir(outdir):
    cfg = yaml.safe_load((outdir / "config.yaml").read_text())
    rounds = cfg["federate"]["total_round_num"]
    assert {p.name for p in outdir.iterdir()} == CLIENT_FILES

    raw = [ast.literal_eval(line) for line in read_lines(outdir / "eval_results.raw")]
    assert [r["Round"] for r in raw] == [n for n in range(rounds) for _ in range(4)]
    kinds = [tuple(sorted({k.split("_")[0] for k in r["Results_raw"]})) for r in raw[:4]]
    assert kinds == [("train",), ("test",), ("val",), ("test", "val")]
    client_id = int(raw[0]["Role"].removeprefix("Client #"))

    (metrics,) = [json.loads(line) for line in read_lines(outdir / "system_metrics.log")]
    assert set(metrics) == METRIC_KEYS and metrics["id"] == client_id

    messages = log_messages(outdir / "exp_print.log")
    address = f"{cfg['distribute']['client_host']}:{cfg['distribute']['client_port']}"
    assert f"Client: Listen to {address}..." in messages
    assert f"Client (address {address}) is assigned with #{client_id}." in messages
    assert any(m.endswith(f"client {client_id} received finish message "
                          "=================") for m in messages)


def test_real_framework_fixtures_meet_the_expectations():
    cfg = check_server_outdir(FIXTURES / "ok" / "server" / "flbed")
    check_client_outdir(FIXTURES / "ok" / "client_1" / "flbed")
    assert cfg["federate"]["total_round_num"] == 5


# ---------------------------------------------------------------- running the stand-in


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Run:
    """A distributed run of the stand-in: configs, processes, their stdout files."""

    def __init__(self, tmp_path, client_num, rounds):
        self.dir = tmp_path
        (tmp_path / "path").mkdir()
        (tmp_path / "path" / "federatedscope").symlink_to(STANDIN_SRC)
        self.ports = free_ports(client_num + 1)
        self.names = ["server"] + [f"client_{i}" for i in range(1, client_num + 1)]
        self.procs = {}
        for index, name in enumerate(self.names):
            self.write_config(name, index, client_num, rounds)

    def write_config(self, name, index, client_num, rounds):
        distribute = {"use": True, "server_host": "127.0.0.1", "server_port": self.ports[0],
                      "role": "server" if index == 0 else "client", "data_idx": index}
        if index:
            distribute.update(client_host="127.0.0.1", client_port=self.ports[index])
        cfg = {"use_gpu": False, "outdir": str(self.dir / "out" / name), "expname": "flbed",
               "federate": {"mode": "distributed", "client_num": client_num,
                            "total_round_num": rounds},
               "distribute": distribute, "data": {"type": "toy"}, "model": {"type": "lr"}}
        (self.dir / f"{name}.yaml").write_text(yaml.safe_dump(cfg))

    def start(self, name, **env):
        full_env = dict(os.environ, PYTHONPATH=str(self.dir / "path"),
                        FLBED_STANDIN_ROUND_S="0.05", **env)
        with open(self.dir / f"{name}.stdout", "w") as stdout:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "federatedscope.main", "--cfg", f"{name}.yaml"],
                cwd=self.dir, env=full_env, stdout=stdout, stderr=subprocess.STDOUT)

    def wait_for_text(self, name, text):
        deadline = time.monotonic() + WAIT_S
        while text not in ANSI.sub("", (self.dir / f"{name}.stdout").read_text()):
            assert self.procs[name].poll() is None, self.stdout(name)
            assert time.monotonic() < deadline, f"no {text!r} in {name}: {self.stdout(name)}"
            time.sleep(0.02)

    def start_all(self, client_env=None):
        self.start("server")
        self.wait_for_text("server", "Server: Listen to")
        for name in self.names[1:]:
            self.start(name, **(client_env or {}).get(name, {}))

    def wait(self, name):
        return self.procs[name].wait(WAIT_S)

    def outdir(self, name):
        return self.dir / "out" / name / "flbed"

    def stdout(self, name):
        return (self.dir / f"{name}.stdout").read_text()[-2000:]

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(5)


@pytest.fixture
def run_factory(tmp_path):
    runs = []

    def make(client_num=2, rounds=3):
        runs.append(Run(tmp_path, client_num, rounds))
        return runs[-1]

    yield make
    for run in runs:
        run.stop()


def test_standin_run_writes_what_the_real_framework_writes(run_factory):
    run = run_factory(client_num=2, rounds=3)
    run.start_all()

    codes = {name: run.wait(name) for name in run.names}

    assert codes == {"server": 0, "client_1": 0, "client_2": 0}, run.stdout("server")
    check_server_outdir(run.outdir("server"))
    for name in run.names[1:]:
        check_client_outdir(run.outdir(name))
    assert "\x1b[38;5;39m" in run.stdout("server")


def test_dead_client_leaves_the_server_waiting_as_the_real_one_does(run_factory):
    run = run_factory(client_num=2, rounds=3)
    run.start_all(client_env={"client_2": {"FLBED_STANDIN_EXIT_AT_ROUND": "1"}})

    assert run.wait("client_2") == 3
    time.sleep(1.0)

    assert run.procs["server"].poll() is None
    assert run.procs["client_1"].poll() is None
    assert "Round #1" in run.stdout("server")
    assert not (run.outdir("server") / "system_metrics.log").exists()
    server_raw = read_lines(run.outdir("server") / "eval_results.raw")
    assert [ast.literal_eval(line)["Round"] for line in server_raw] == [0]
    run.stop()
    assert run.procs["server"].returncode == -signal.SIGTERM


def test_client_that_cannot_bind_its_address_fails_with_the_address(run_factory):
    run = run_factory(client_num=1, rounds=1)
    cfg = yaml.safe_load((run.dir / "client_1.yaml").read_text())
    cfg["distribute"]["client_host"] = "192.0.2.1"  # TEST-NET-1: on no local interface
    (run.dir / "client_1.yaml").write_text(yaml.safe_dump(cfg))

    run.start("client_1")

    assert run.wait("client_1") == 1
    assert "cannot listen at 192.0.2.1:" in run.stdout("client_1")


def test_existing_outdir_gets_a_sub_exp_directory(tmp_path):
    spec = importlib.util.spec_from_file_location("fs_standin_config", STANDIN_SRC / "config.py")
    config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config)
    (tmp_path / "flbed").mkdir()

    outdir = config.resolve_outdir({"outdir": str(tmp_path), "expname": "flbed",
                                    "expname_tag": ""})

    assert re.fullmatch(r"sub_exp_\d{14}", Path(outdir).name)
    assert Path(outdir).parent == tmp_path / "flbed"
