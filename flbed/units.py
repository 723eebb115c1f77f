"""Parse the tc-style unit strings of testbed files into plain numbers.

Units are parsed here, once, on the controller: Ansible modules only ever see bit/s,
milliseconds, percent and bytes. Each parser raises ``ValueError`` with a message that says
what is allowed; the schema prefixes it with the field path.
"""

import re

_NUMBER = r"(?P<number>\d+(?:\.\d+)?|\.\d+)"

# tc's own vocabulary: "bit" suffixes are bits per second, "bps" suffixes bytes per second.
RATE_UNITS_BPS = {
    "bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
    "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9,
}
TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Docker's memory vocabulary: binary multiples, one letter, an optional "b".
BYTE_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _split(text, units, what):
    match = re.fullmatch(_NUMBER + r"\s*(?P<unit>[a-z]*)", str(text).strip().lower())
    if not match or match["unit"] not in units:
        allowed = ", ".join(unit for unit in units if unit)
        raise ValueError(f"{text!r} is not a {what}; use a number with one of: {allowed}")
    return float(match["number"]), units[match["unit"]]


def parse_rate_bps(text):
    """``"128kbit"`` -> 128000 (bit/s). A bare number is refused: tc and users disagree on it."""
    number, factor = _split(text, RATE_UNITS_BPS, "rate")
    return int(round(number * factor))


def parse_time_ms(text):
    """``"20ms"`` -> 20.0, ``"1s"`` -> 1000.0, ``"0"`` -> 0.0."""
    if str(text).strip() in ("0", "0.0"):
        return 0.0
    number, factor = _split(text, TIME_UNITS_MS, "time")
    return number * factor


def parse_duration_s(text):
    """A timeout such as ``"90s"``, ``"15m"`` or ``"2h"`` -> seconds; a bare int is seconds."""
    if isinstance(text, int) and not isinstance(text, bool):
        return float(text)
    number, factor = _split(text, DURATION_UNITS_S, "duration")
    return number * factor


def parse_percent(text):
    """``"0.5%"`` or ``0.5`` -> 0.5, refused outside 0..100."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a percentage; use a number from 0 to 100, e.g. '0.5%'")
    value = str(text).strip()
    if value.endswith("%"):
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a percentage; use a number from 0 to 100, e.g. '0.5%'") from None
    if not 0.0 <= number <= 100.0:
        raise ValueError(f"{text!r} is outside 0% to 100%")
    return number


def parse_bytes(text):
    """Docker-style memory: ``"256m"`` -> 268435456, ``"1536m"``, ``"4g"``, ``"4GiB"``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = re.fullmatch(_NUMBER + r"\s*(?P<unit>[kmgt]?)(?:i?b)?", str(text).strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a memory size; use a number with k, m, g or t, "
                         "e.g. '256m' or '4g'")
    return int(float(match["number"]) * BYTE_UNITS[match["unit"]])


def format_rate(bps):
    """Bit/s back to the shortest tc-style text, for tables: 128000 -> '128kbit'."""
    for unit in ("gbit", "mbit", "kbit"):
        factor = RATE_UNITS_BPS[unit]
        if bps >= factor:
            return f"{bps / factor:g}{unit}"
    return f"{bps:g}bit"


def format_bytes(size):
    """Bytes back to Docker-style text: 268435456 -> '256m'."""
    for unit in ("t", "g", "m", "k"):
        if size >= BYTE_UNITS[unit] and size % BYTE_UNITS[unit] == 0:
            return f"{size // BYTE_UNITS[unit]}{unit}"
    return str(size)
