"""flbed_fence: reading a namespace's routes and the commands that fence it in.

The route listings are what `ip -4 route show` printed in a participant's namespace on a
Docker bridge network, before and after the fence.
"""

import pytest

from tests.conftest import load_module

ON_A_BRIDGE = ("default via 172.25.0.1 dev eth0 \n"
               "172.25.0.0/16 dev eth0 proto kernel scope link src 172.25.0.3 \n")
FENCED = ("172.25.0.0/16 dev eth0 proto kernel scope link src 172.25.0.3 \n"
          "prohibit 172.25.0.1 \n")


@pytest.fixture
def fence(monkeypatch):
    return load_module(monkeypatch, "plugins/modules/flbed_fence.py", utils=["flbed_docker"])


def test_an_unfenced_namespace_loses_its_default_route_and_its_gateway(fence):
    routes = fence.parse_routes(ON_A_BRIDGE)
    assert fence.fence_commands(routes, ["172.25.0.1"]) == [
        "route del default", "route add prohibit 172.25.0.1/32"]


def test_a_fenced_namespace_needs_nothing(fence):
    assert fence.fence_commands(fence.parse_routes(FENCED), ["172.25.0.1"]) == []


def test_every_default_route_goes_and_every_gateway_is_prohibited(fence):
    routes = fence.parse_routes("default via 10.0.1.1 dev eth0 \n"
                                "default via 172.18.0.1 dev eth1 metric 10 \n"
                                "prohibit 10.0.1.1 \n")
    assert fence.fence_commands(routes, ["10.0.1.1", "172.18.0.1"]) == [
        "route del default", "route del default", "route add prohibit 172.18.0.1/32"]


def test_gateways_come_from_every_network_of_the_container(fence):
    info = {"NetworkSettings": {"Networks": {
        "flbed-a": {"Gateway": "172.25.0.1", "IPAddress": "172.25.0.3"},
        "overlay": {"Gateway": "", "IPAddress": "10.0.1.5"}}}}
    assert fence.gateways_of(info) == ["172.25.0.1"]
    assert fence.gateways_of(None) == []
