"""Unit tests of the sampler module and its link counters: parsing, CPU percent, the loop."""

import importlib.util
import json
import os
import sys
import types

import pytest
import yaml

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "plugins" / "module_utils"))

import flbed_docker  # noqa: E402
import flbed_netstats  # noqa: E402

# /proc/net/dev as the kernel writes it, with its columns' padding squeezed.
NET_DEV = """Inter-|   Receive                                  |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop ...
    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
  eth0: 7446 89 0 2 0 0 0 0 6359 73 0 1 0 0 0 0
ifb-flbed: 2636 40 0 0 0 0 0 0 2636 40 0 0 0 0 0 0
"""

QDISCS = [
    {"kind": "tbf", "handle": "1:", "dev": "eth0", "root": True, "bytes": 2829, "packets": 34,
     "drops": 4, "overlimits": 7, "requeues": 0},
    {"kind": "ingress", "handle": "ffff:", "dev": "eth0", "parent": "ffff:fff1", "bytes": 2636,
     "packets": 40, "drops": 0, "overlimits": 0, "requeues": 0},
    {"kind": "tbf", "handle": "1:", "dev": "ifb-flbed", "root": True, "bytes": 2636,
     "packets": 40, "drops": 1, "overlimits": 2, "requeues": 0},
]


def test_proc_net_dev_is_read_per_device():
    devices = flbed_netstats.parse_proc_net_dev(NET_DEV)
    assert set(devices) == {"lo", "eth0", "ifb-flbed"}
    assert devices["eth0"] == {"rx_bytes": 7446, "rx_packets": 89, "rx_errs": 0, "rx_drop": 2,
                               "tx_bytes": 6359, "tx_packets": 73, "tx_errs": 0, "tx_drop": 1}


def test_link_totals_are_seen_from_the_container():
    devices = flbed_netstats.parse_proc_net_dev(NET_DEV)
    qdiscs = flbed_netstats.summarize_qdiscs(QDISCS)
    assert [q["parent"] for q in qdiscs] == ["root", "ffff:fff1", "root"]
    totals = flbed_netstats.link_totals(devices, qdiscs)
    assert (totals["up_bytes"], totals["down_bytes"]) == (6359, 7446)
    assert (totals["up_packets"], totals["down_packets"]) == (73, 89)
    assert totals["device_drops"] == 3
    assert (totals["qdisc_drops"], totals["qdisc_overlimits"]) == (5, 9)
    assert flbed_netstats.link_totals({}, None)["qdisc_drops"] is None


def test_a_process_that_is_gone_has_no_counters():
    assert flbed_netstats.read_net_dev(2**22 + 12345) is None


class FakeCgroups:
    """CPU time that grows by 0.25 s of CPU per call, memory that grows by 1 MiB."""

    def __init__(self, pid):
        self.calls = 0

    def cpu_usage_ns(self):
        self.calls += 1
        return self.calls * 250_000_000

    def memory(self):
        return {"usage_bytes": self.calls * 2**20}


@pytest.fixture
def sampler_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "ansible.module_utils.flbed_cgroup",
                        types.SimpleNamespace(ContainerCgroups=FakeCgroups))
    monkeypatch.setitem(sys.modules, "ansible.module_utils.flbed_netstats", flbed_netstats)
    monkeypatch.setitem(sys.modules, "ansible.module_utils.flbed_docker", flbed_docker)
    spec = importlib.util.spec_from_file_location(
        "flbed_sampler_for_tests", REPO / "plugins" / "modules" / "flbed_sampler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_percent_is_of_one_core(sampler_module):
    assert sampler_module.cpu_pct(0, 500_000_000, 1.0) == pytest.approx(50.0)
    assert sampler_module.cpu_pct(0, 3_000_000_000, 1.5) == pytest.approx(200.0)
    assert sampler_module.cpu_pct(None, 1, 1.0) is None
    assert sampler_module.cpu_pct(5, 1, 1.0) is None       # a counter that went back
    assert sampler_module.csv_row(1.5, None, 10, 2.0) == "1.500,,10,2.000\n"


def test_the_loop_writes_resources_and_link_stats(sampler_module, tmp_path):
    class Api:
        def inspect_container(self, name):
            if name == "flbed-t-gone":
                return {"State": {"Running": False, "Status": "exited", "Pid": 0}}
            return {"State": {"Running": True, "Pid": os.getpid()}}

    params = {"workdir": str(tmp_path), "interval_s": 0.05, "tc_every_s": 10.0,
              "max_duration_s": 0.3, "stop_wait_s": 1.0,
              "participants": [{"name": "client-1", "container": "flbed-t-client-1"},
                               {"name": "gone", "container": "flbed-t-gone"}]}
    module = types.SimpleNamespace(params=params, check_mode=False, warn=print)
    sampler = sampler_module.Sampler(module, Api())
    result = sampler.present()
    assert result["ended_because"] == "max duration"
    rows = (tmp_path / "client-1" / "resources.csv").read_text().splitlines()
    assert rows[0] == "time_s,cpu_pct,memory_bytes,unix_s"
    assert len(rows) - 1 == result["samples"]["client-1"] >= 3
    first = rows[1].split(",")
    assert 0 < float(first[1]) and int(first[2]) == 2 * 2**20
    link = json.loads((tmp_path / "client-1" / "link_stats.json").read_text())
    assert link["running_at_last_read"] is True and "lo" in link["devices"]
    assert result["samples"]["gone"] == 0 and not (tmp_path / "gone" / "link_stats.json").exists()
    assert sampler.absent()["ended_because"] == "max duration"   # done already: no wait


def test_stopping_without_a_sampler_says_so(sampler_module, tmp_path):
    module = types.SimpleNamespace(params={"workdir": str(tmp_path), "stop_wait_s": 1.0},
                                   check_mode=False)
    assert sampler_module.Sampler(module, None).absent() == {"changed": False, "running": False}


def test_documentation_matches_the_argument_spec(sampler_module):
    text = (REPO / "plugins" / "modules" / "flbed_sampler.py").read_text()
    documented = yaml.safe_load(sampler_module.DOCUMENTATION)["options"]
    spec_names = {"state", "workdir", "participants", "interval_s", "tc_every_s",
                  "max_duration_s", "stop_wait_s"}
    assert set(documented) == spec_names
    for name in spec_names:
        assert f"{name}=dict(" in text
    yaml.safe_load(sampler_module.EXAMPLES)
    assert set(yaml.safe_load(sampler_module.RETURN)) == {
        "running", "samples", "duration_s", "sampler_cpu_s", "ended_because"}
