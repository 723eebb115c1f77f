"""flbed_link_probe's goodput estimate from iperf3's receiver intervals.

The intervals are those of a real 3 s run over a 5 mbit tbf link (steady goodput 4.78 Mbit/s
after TCP/IP headers): a slow omitted second, a first counted second inflated by bytes held
back during loss recovery, two steady seconds and the receiver's closing 18 ms sliver.
"""

import pytest

from tests.conftest import load_module

RUN_5MBIT = [(1.0, 3.857e6, True), (1.0, 5.734e6, False), (1.0, 4.773e6, False),
             (1.0, 4.784e6, False), (0.018, 5.228e6, False)]


@pytest.fixture
def probe(monkeypatch):
    return load_module(monkeypatch, "plugins/modules/flbed_link_probe.py",
                       utils=["flbed_docker", "flbed_tc"])


def receiver_report(intervals):
    return {"intervals": [{"sum": {"seconds": seconds, "bits_per_second": rate,
                                   "omitted": omitted}}
                          for seconds, rate, omitted in intervals]}


def test_the_closing_sliver_and_the_omitted_start_do_not_count(probe):
    report = {"server_output_json": receiver_report(RUN_5MBIT)}
    assert probe.receiver_rate_bps(report, reverse=False) == pytest.approx(4.784e6)


def test_a_download_is_read_from_the_client_side_report(probe):
    assert probe.receiver_rate_bps(receiver_report(RUN_5MBIT), reverse=True) == \
        pytest.approx(4.784e6)


def test_a_report_without_whole_intervals_is_an_error(probe):
    report = receiver_report([(1.0, 3e6, True), (0.02, 5e6, False)])
    with pytest.raises(ValueError, match="no receiver intervals"):
        probe.receiver_rate_bps(report, reverse=True)
