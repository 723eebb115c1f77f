import pytest

from flbed import units


@pytest.mark.parametrize("text, bps", [
    ("128kbit", 128_000), ("1gbit", 10**9), ("50mbit", 50 * 10**6), ("8kbit", 8000),
    ("1.5mbit", 1_500_000), ("100kbps", 800_000), ("10 mbit", 10**7),
])
def test_rates_are_bits_per_second(text, bps):
    assert units.parse_rate_bps(text) == bps


@pytest.mark.parametrize("text", ["12", "5 mbits", "-1mbit", "fast", "", "1e6bit"])
def test_bad_rates_say_what_is_allowed(text):
    with pytest.raises(ValueError, match="kbit, mbit"):
        units.parse_rate_bps(text)


@pytest.mark.parametrize("text, ms", [("20ms", 20.0), ("1s", 1000.0), ("500us", 0.5), ("0", 0)])
def test_times_are_milliseconds(text, ms):
    assert units.parse_time_ms(text) == ms


@pytest.mark.parametrize("text, size", [
    ("256m", 256 * 2**20), ("1536m", 1536 * 2**20), ("4g", 4 * 2**30), ("4GiB", 4 * 2**30),
    ("512k", 512 * 2**10), (1024, 1024),
])
def test_memory_is_bytes(text, size):
    assert units.parse_bytes(text) == size


@pytest.mark.parametrize("text", ["12x", "lots", "-5m", "4 gigs"])
def test_bad_memory_is_refused(text):
    with pytest.raises(ValueError, match="memory size"):
        units.parse_bytes(text)


@pytest.mark.parametrize("text, pct", [("0.5%", 0.5), (1, 1.0), ("100%", 100.0), ("0", 0.0)])
def test_percentages(text, pct):
    assert units.parse_percent(text) == pct


@pytest.mark.parametrize("text", ["101%", "-1%", "half", True])
def test_bad_percentages(text):
    with pytest.raises(ValueError):
        units.parse_percent(text)


def test_durations():
    assert units.parse_duration_s("15m") == 900
    assert units.parse_duration_s("2h") == 7200
    assert units.parse_duration_s(90) == 90


def test_formatting_round_trips():
    assert units.format_rate(128_000) == "128kbit"
    assert units.format_rate(10**9) == "1gbit"
    assert units.format_bytes(1536 * 2**20) == "1536m"
    assert units.format_bytes(32 * 2**30) == "32g"
