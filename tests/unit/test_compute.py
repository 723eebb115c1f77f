"""Unit tests of compute emulation: settings, plan and summary records, the entry point's
blocking wait and held join, cgroup parsing, and how a kill for memory is recognised."""

import importlib.util
import os
import socket
import sys
import threading
import time
import types

import pytest

from flbed import plan, results, schema
from flbed.errors import InputError
from flbed.inventory import Inventory
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "plugins" / "module_utils"))

import flbed_cgroup  # noqa: E402

BASE = {
    "name": "demo",
    "federatedscope": {"config": {"data": {"type": "toy"}}},
    "server": {"profile": "edge_server"},
    "clients": [{"profile": "iot_minimal"}],
}
ONE_HOST = Inventory({"localhost": {"flbed_host_cpus": 4}}, {"all": ["localhost"]})
MIB = 2**20


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_plan(fs_settings):
    data = dict(BASE, federatedscope=dict(BASE["federatedscope"], **fs_settings))
    testbed = schema.parse_testbed(data, environ={})
    return plan.make_plan(testbed, ONE_HOST, run_id="20261203T000000Z", runs_root="/r")


def test_defaults_block_waits_and_throttle_once_ready():
    made = make_plan({})
    assert made["fs_wait"] == "blocking" and made["cpu_policy"] == "after_ready"


def test_the_testbed_may_spin_and_throttle_from_the_start():
    made = make_plan({"wait": "spinning", "throttle_from_start": True})
    assert made["fs_wait"] == "spinning" and made["cpu_policy"] == "from_start"


@pytest.mark.parametrize("settings, fragment", [
    ({"wait": "busy"}, "federatedscope.wait: 'busy' is not allowed; use one of blocking, "
                       "spinning"),
    ({"throttle_from_start": "yes"}, "federatedscope.throttle_from_start: 'yes' is not "
                                     "allowed; use true"),
])
def test_bad_compute_settings_are_refused_with_what_is_allowed(settings, fragment):
    with pytest.raises(InputError) as raised:
        make_plan(settings)
    assert any(fragment in problem for problem in raised.value.problems)


def test_summary_records_the_emulation_and_memory(tmp_path):
    made = make_plan({})
    made["run_dir"] = str(tmp_path)
    outcome = {"host": "localhost", "participants": [
        {"name": "client-1", "state": "exited", "exit_code": 137, "oom_killed": True,
         "memory_bytes": 256 * MIB, "memory_peak_bytes": 250 * MIB}],
        "cpu_quotas": [{"name": "server", "cpus": 2.0, "applied_at": 10.5},
                       {"name": "client-1", "cpus": 0.1, "applied_at": 12.0}]}
    summary = results.build_summary(made, [outcome])
    assert summary["emulation"] == {
        "fs_wait": "blocking", "cpu_policy": "after_ready",
        "cpu_quotas": {
            "server": {"cpus": 2.0, "applied_at": 10.5, "from": "profile",
                       "throughput_steps_per_s": None},
            "client-1": {"cpus": 0.1, "applied_at": 12.0, "from": "profile",
                         "throughput_steps_per_s": None}},
        "calibrations": {}}
    client = summary["participants"][1]
    assert client["memory_limit_bytes"] == 256 * MIB
    assert client["memory_peak_bytes"] == 250 * MIB


# The entry point, against a fake framework of the same shape.

@pytest.fixture
def entry_point(monkeypatch):
    servicer = type("gRPCComServeFunc", (), {
        "__init__": lambda self: setattr(self, "msg_queue", __import__("collections").deque()),
        "sendMessage": lambda self, request, context: self.msg_queue.append(request),
        "receive": lambda self: (_ for _ in ()).throw(AssertionError("spun")),
    })
    joined = []
    client = type("Client", (), {"join_in": lambda self: joined.append(time.monotonic())})
    for name, attrs in [("federatedscope", {}), ("federatedscope.core", {}),
                        ("federatedscope.core.gRPC_server", {"gRPCComServeFunc": servicer}),
                        ("federatedscope.core.workers", {}),
                        ("federatedscope.core.workers.client", {"Client": client})]:
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    module = load("docker/participant.py", "flbed_participant_for_tests")
    return module, servicer, client, joined


def test_blocking_receive_sleeps_until_a_message_arrives(entry_point):
    module, servicer, _, _ = entry_point
    assert module.make_waits_blocking() is True
    service = servicer()
    got = []
    reader = threading.Thread(target=lambda: got.append(service.receive()))
    reader.start()
    time.sleep(0.2)
    assert got == [] and reader.is_alive()
    service.sendMessage("join_in", None)
    reader.join(timeout=2)
    assert got == ["join_in"]


def test_blocking_queue_keeps_the_order_and_length():
    module = load("docker/participant.py", "flbed_participant_queue")
    queue = module.BlockingMessageQueue()
    queue.append(1)
    queue.append(2)
    assert len(queue) == 2 and queue.wait_and_pop() == 1 and queue.popleft() == 2


def test_join_waits_for_the_throttled_file(entry_point, tmp_path):
    module, _, client, joined = entry_point
    signal = tmp_path / "throttled"
    assert module.hold_join_until(str(signal)) is True
    worker = threading.Thread(target=client().join_in)
    worker.start()
    time.sleep(0.3)
    assert joined == []
    written = time.monotonic()
    signal.write_text("{}")
    worker.join(timeout=2)
    assert joined and joined[0] >= written


def test_nothing_to_replace_in_a_framework_without_a_servicer(monkeypatch):
    monkeypatch.setitem(sys.modules, "federatedscope", types.SimpleNamespace())
    module = load("docker/participant.py", "flbed_participant_bare")
    assert module.make_waits_blocking() is False
    assert module.hold_join_until("/nonexistent") is False


# cgroup files

def test_proc_cgroup_lines_map_controllers_to_paths():
    text = ("12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n")
    assert flbed_cgroup.parse_proc_cgroup(text) == {
        "cpu": "/docker/abc", "cpuacct": "/docker/abc", "memory": "/docker/abc", "": "/docker/abc"}


def test_flat_keyed_files_give_numbers():
    text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
    assert flbed_cgroup.parse_flat_keyed(text) == {
        "oom_kill_disable": 0, "under_oom": 0, "oom_kill": 2}


def test_v1_memory_is_read_from_the_container_cgroup(tmp_path, monkeypatch):
    folder = tmp_path / "memory" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "memory.usage_in_bytes").write_text("5000\n")
    (folder / "memory.max_usage_in_bytes").write_text("9000\n")
    (folder / "memory.stat").write_text("cache 100\ntotal_inactive_file 1000\n")
    (folder / "memory.oom_control").write_text("oom_kill_disable 0\noom_kill 1\n")
    monkeypatch.setattr(flbed_cgroup, "_read", lambda path, real=flbed_cgroup._read: (
        "4:memory:/docker/abc\n" if path.startswith("/proc/") else real(path)))
    cgroups = flbed_cgroup.ContainerCgroups(123, root=str(tmp_path))
    assert cgroups.memory() == {"usage_bytes": 5000, "working_set_bytes": 4000,
                                "peak_bytes": 9000, "oom_kills": 1}


# How the watch module recognises a kill for memory.

@pytest.fixture
def watch():
    helpers = {name: importlib.import_module(name)  # plain helpers: the real ones
               for name in ("flbed_netstats", "flbed_progress")}
    stubs = {"ansible": {}, "ansible.module_utils": helpers,
             "ansible.module_utils.basic": {"AnsibleModule": object},
             "ansible.module_utils.flbed_cgroup": {"ContainerCgroups": object},
             "ansible.module_utils.flbed_docker": {"DockerAPI": object,
                                                   "DockerError": Exception}}
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update({name: types.SimpleNamespace(**attrs) for name, attrs in stubs.items()})
    try:
        yield load("plugins/modules/flbed_watch.py", "flbed_watch_for_tests")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def entry(**fields):
    base = {"name": "client-1", "state": "exited", "exit_code": 137, "oom_killed": False,
            "memory_bytes": 64 * MIB, "memory_peak_bytes": None, "oom_kills": None}
    return dict(base, **fields)


def test_a_kill_for_memory_is_the_engine_flag_the_cgroup_count_or_sigkill_at_the_limit(watch):
    assert watch.ran_out_of_memory(entry(oom_killed=True))
    assert watch.ran_out_of_memory(entry(oom_kills=1))
    assert watch.ran_out_of_memory(entry(memory_peak_bytes=63 * MIB))
    assert not watch.ran_out_of_memory(entry(memory_peak_bytes=20 * MIB))
    assert not watch.ran_out_of_memory(entry(exit_code=1, memory_peak_bytes=63 * MIB))


def test_the_reason_names_the_limit_and_the_peak(watch):
    reason = watch.failure_reason(entry(oom_killed=True, memory_peak_bytes=63.5 * MIB))
    assert reason == ("killed by the out-of-memory killer at its memory limit of 64.0 MiB "
                      "(highest use seen 63.5 MiB)")


def test_the_kept_memory_record_keeps_the_highest_peak(watch):
    kept = watch.merge_memory({"peak_bytes": 900, "oom_kills": 0},
                              {"peak_bytes": 500, "working_set_bytes": 300, "oom_kills": 1})
    assert kept == {"peak_bytes": 900, "oom_kills": 1, "usage_bytes": 300}
    assert watch.merge_memory(None, {"peak_bytes": None, "working_set_bytes": None}) == {
        "peak_bytes": None, "oom_kills": None}


def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


def test_a_finished_client_lingers_while_the_server_listens():
    module = load("docker/participant.py", "flbed_participant_linger")
    server = listener()
    port = server.getsockname()[1]
    closer = threading.Timer(0.4, server.close)
    closer.start()
    started = time.monotonic()
    module.linger_while_listening(f"localhost:{port}", max_s=5, poll_s=0.05)
    assert 0.4 <= time.monotonic() - started < 2  # until the port closed, not to the limit
    closer.join()


def test_lingering_ends_at_its_limit_when_the_server_stays():
    module = load("docker/participant.py", "flbed_participant_linger_max")
    server = listener()
    try:
        started = time.monotonic()
        module.linger_while_listening(f"localhost:{server.getsockname()[1]}", max_s=0.3,
                                      poll_s=0.05)
        assert 0.3 <= time.monotonic() - started < 2
    finally:
        server.close()


def test_a_server_name_that_does_not_resolve_ends_lingering_at_once():
    module = load("docker/participant.py", "flbed_participant_linger_gone")
    started = time.monotonic()
    module.linger_while_listening("flbed-no-such-participant.invalid:50051", max_s=5)
    assert time.monotonic() - started < 5


def test_the_run_ends_once_the_server_and_its_lingering_clients_have_stopped(watch):
    server = {"name": "server", "container": "flbed-demo-server", "state": "exited",
              "exit_code": 0, "finished_at": 1000.0}
    client = {"name": "client-1", "container": "flbed-demo-client-1", "state": "running",
              "exit_code": None, "finished_at": None}
    assert not watch.server_finished([server, client], server["container"], 1001.0)
    assert watch.server_finished([server, dict(client, state="exited", exit_code=0)],
                                 server["container"], 1001.0)
    assert watch.server_finished([server, client], server["container"],
                                 1000.0 + watch.CLIENTS_AFTER_SERVER_S + 1)
    failed = dict(server, exit_code=1)
    assert not watch.server_finished([failed], server["container"], 5000.0)


def test_engine_times_are_read_to_the_second(watch):
    assert watch.engine_time("2026-12-04T08:14:20.123456789Z") == 1796372060
    assert watch.engine_time("0001-01-01T00:00:00Z") is None
    assert watch.engine_time(None) is None
