import pytest

from flbed import fsconfig, plan, schema
from flbed.errors import InputError
from flbed.inventory import Inventory, from_inventory_json

BASE = {
    "name": "demo",
    "federatedscope": {"config": {"data": {"type": "toy"}, "model": {"type": "lr"},
                                  "federate": {"total_round_num": 3}}},
    "server": {"profile": "edge_server"},
    "clients": [{"profile": "smartphone_low", "count": 2}, {"profile": "iot_minimal"}],
}
ONE_HOST = Inventory({"localhost": {"flbed_host_cpus": 4}}, {"all": ["localhost"]})
LAB = Inventory(
    {"srv": {"flbed_host_cpus": 16}, "pi1": {"flbed_host_cpus": 4},
     "pi2": {"flbed_host_cpus": 4}},
    {"all": ["srv", "pi1", "pi2"], "pis": ["pi1", "pi2"]})


def make(data=None, inventory=ONE_HOST, **kw):
    testbed = schema.parse_testbed(data or BASE, environ={})
    return plan.make_plan(testbed, inventory, run_id="20261203T000000Z", runs_root="/r", **kw)


def test_participants_in_order_with_plain_numbers():
    made = make()
    names = [p["name"] for p in made["participants"]]
    assert names == ["server", "client-1", "client-2", "client-3"]
    iot = made["participants"][3]
    assert iot["container"] == "flbed-demo-client-3"
    assert iot["memory_bytes"] == 256 * 2**20 and iot["cpus"] == 0.1
    assert iot["link"] == {"up_rate_bps": 128_000, "down_rate_bps": 384_000,
                           "delay_ms": 300.0, "jitter_ms": 0.0, "loss_pct": 5.0}
    assert made["run_dir"] == "/r/demo/20261203T000000Z"
    assert made["network"] == "flbed-demo" and made["total_rounds"] == 3


def test_fs_config_of_server_and_clients():
    server, client = make()["participants"][:2]
    assert server["fs_config"]["distribute"] == {
        "use": True, "role": "server", "data_idx": 0,
        "server_host": "flbed-demo-server", "server_port": fsconfig.GRPC_PORT}
    assert client["fs_config"]["distribute"]["client_host"] == "flbed-demo-client-1"
    assert client["fs_config"]["distribute"]["data_idx"] == 1
    assert client["fs_config"]["federate"] == {"total_round_num": 3, "mode": "distributed",
                                               "client_num": 3}
    assert client["fs_config"]["data"] == {"type": "toy"}
    assert client["fs_config"]["outdir"] == fsconfig.OUTPUT_DIR
    assert client["fs_config"]["use_gpu"] is False


def test_keys_flbed_owns_are_refused():
    data = {**BASE, "federatedscope": {"config": {"distribute": {"role": "client"},
                                                  "federate": {"client_num": 9}}}}
    with pytest.raises(InputError) as caught:
        make(data)
    assert any(p.startswith("federatedscope.config.distribute.role: set by flbed")
               for p in caught.value.problems)
    assert any(p.startswith("federatedscope.config.federate.client_num")
               for p in caught.value.problems)


def test_placement_by_host_and_round_robin_over_a_group():
    data = {**BASE, "server": {"profile": "edge_server", "host": "srv"},
            "clients": [{"profile": "raspberry_pi", "count": 3, "host": "pis"}]}
    hosts = [p["host"] for p in make(data, LAB)["participants"]]
    assert hosts == ["srv", "pi1", "pi2", "pi1"]


def test_unknown_host_is_refused_with_what_exists():
    data = {**BASE, "clients": [{"profile": "raspberry_pi", "host": "pi9"}]}
    with pytest.raises(InputError) as caught:
        make(data, LAB)
    assert caught.value.problems == [
        "clients[0].host: 'pi9' is not a host or group of the inventory; "
        "known: all, pi1, pi2, pis, srv"]


def test_a_participant_larger_than_its_host_is_refused():
    small = Inventory({"tiny": {"flbed_host_cpus": 1}}, {"all": ["tiny"]})
    with pytest.raises(InputError) as caught:
        make(inventory=small)
    assert caught.value.problems == [
        "server.profile: 'edge_server' asks for 2 CPUs but host 'tiny' has 1; "
        "use a profile with cpus <= 1"]


def test_an_oversubscribed_host_is_a_warning():
    two = Inventory({"h": {"flbed_host_cpus": 2}}, {"all": ["h"]})
    made = make(inventory=two)
    assert made["warnings"] == [
        "host 'h' is oversubscribed: its participants ask for 3.1 CPUs and it has 2; "
        "they will compute slower than their profiles say"]


def test_inventory_listing_is_read_with_nested_groups():
    listing = {
        "_meta": {"hostvars": {"srv": {"flbed_host_cpus": 8}}},
        "all": {"children": ["ungrouped", "lab"]},
        "lab": {"children": ["pis"], "hosts": ["srv"]},
        "pis": {"hosts": ["pi1", "pi2"]},
        "ungrouped": {},
    }
    inventory = from_inventory_json(listing)
    assert inventory.members("lab") == ["srv", "pi1", "pi2"]
    assert inventory.members("pi2") == ["pi2"]
    assert inventory.host_cpus("srv") == 8 and inventory.host_cpus("pi1") is None
