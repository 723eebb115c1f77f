"""Device profiles: what a participant's container may use and what its link delivers.

A profile is written in the testbed's units (``"50mbit"``, ``"20ms"``, ``"4g"``); resolving it
gives a ``Profile`` in plain numbers. A device's compute is stated one of two ways:

- ``cpus``: a Docker CPU quota in host cores. It stands for how fast the device computes
  relative to the host, not for the device's core count, so it computes differently on a fast
  and a slow host.
- ``throughput``: training steps per second of the testbed's reference workload (its model,
  data and optimizer). ``flbed calibrate`` measures each host, and the plan turns the
  throughput into the quota that delivers it there, so it computes alike on every host.
"""

from dataclasses import asdict, dataclass
from typing import Optional

from . import units

BUILTIN_PROFILES = {
    "edge_server": {
        "description": "16 cores, 32 GB, GPU, gigabit Ethernet",
        "memory": "32g", "cpus": 2.0,
        "link": {"up": "1gbit", "down": "1gbit", "delay": "1ms", "loss": "0%"},
    },
    "smartphone_high": {
        "description": "8 cores, 4 GB, 5G",
        "memory": "4g", "cpus": 1.0,
        "link": {"up": "50mbit", "down": "100mbit", "delay": "20ms", "loss": "0.5%"},
    },
    "smartphone_low": {
        "description": "4 cores, 1.5 GB, 4G",
        "memory": "1536m", "cpus": 0.5,
        "link": {"up": "5mbit", "down": "20mbit", "delay": "50ms", "loss": "1%"},
    },
    "raspberry_pi": {
        "description": "4 ARM cores, 4 GB, Wi-Fi",
        "memory": "4g", "cpus": 0.5,
        "link": {"up": "20mbit", "down": "50mbit", "delay": "10ms", "loss": "0.1%"},
    },
    "iot_minimal": {
        "description": "1 core, 256 MB, 2G/3G",
        "memory": "256m", "cpus": 0.1,
        "link": {"up": "128kbit", "down": "384kbit", "delay": "300ms", "loss": "5%"},
    },
}

PROFILE_KEYS = ("extends", "description", "memory", "cpus", "throughput", "link")
# The two ways of stating compute; a profile has exactly one.
COMPUTE_KEYS = ("cpus", "throughput")
LINK_KEYS = ("up", "down", "delay", "jitter", "loss")
# Largest quota one participant may ask for, before the host's own count is known.
MAX_CPUS = 256.0
MIN_MEMORY_BYTES = 6 * 2**20  # Docker refuses limits under 6 MiB.
MAX_THROUGHPUT_STEPS_PER_S = 1e6
THROUGHPUT_UNIT = "steps/s"


@dataclass(frozen=True)
class Link:
    """A link in plain numbers; a rate of 0 means "not shaped"."""

    up_rate_bps: int = 0
    down_rate_bps: int = 0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    def as_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    memory_bytes: int
    cpus: Optional[float]                     # None when the compute is a throughput
    link: Link
    throughput_steps_per_s: Optional[float] = None


def merge_profile(base, override):
    """A profile written over another: top-level keys replace, ``link`` merges key by key."""
    merged = dict(base)
    if any(key in override for key in COMPUTE_KEYS):
        # A profile that states its compute replaces how its parent stated it.
        for key in COMPUTE_KEYS:
            merged.pop(key, None)
    merged.update({key: value for key, value in override.items() if key != "link"})
    merged["link"] = {**(base.get("link") or {}), **(override.get("link") or {})}
    merged.pop("extends", None)
    return merged


def _cpus(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a CPU quota; use a number of host cores "
                         f"from 0.01 to {MAX_CPUS:g}, e.g. 0.5")
    if not 0.01 <= value <= MAX_CPUS:
        raise ValueError(f"{value!r} is outside the CPU quota range 0.01 to {MAX_CPUS:g}")
    return float(value)


def _throughput(value):
    """Steps per second of the reference workload: a number, or text like "12 steps/s"."""
    number = value
    if isinstance(value, str) and value.strip().endswith(THROUGHPUT_UNIT):
        try:
            number = float(value.strip()[:-len(THROUGHPUT_UNIT)])
        except ValueError:
            number = value
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise ValueError(f"{value!r} is not a throughput; use training steps per second of "
                         f"the reference workload, e.g. 12 or '12 steps/s'")
    if not 0 < number <= MAX_THROUGHPUT_STEPS_PER_S:
        raise ValueError(f"{value!r} is outside the throughput range: above 0, at most "
                         f"{MAX_THROUGHPUT_STEPS_PER_S:g} steps/s")
    return float(number)


def _memory(value):
    size = units.parse_bytes(value)
    if size < MIN_MEMORY_BYTES:
        raise ValueError(f"{value!r} is below Docker's smallest memory limit, 6m")
    return size


def _link(raw):
    """Convert one link mapping, raising ValueError("<key>: <why>") on the first bad value."""
    def convert(key, parse, default):
        if raw.get(key) is None:
            return default
        try:
            return parse(raw[key])
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None

    link = Link(
        up_rate_bps=convert("up", units.parse_rate_bps, 0),
        down_rate_bps=convert("down", units.parse_rate_bps, 0),
        delay_ms=convert("delay", units.parse_time_ms, 0.0),
        jitter_ms=convert("jitter", units.parse_time_ms, 0.0),
        loss_pct=convert("loss", units.parse_percent, 0.0),
    )
    if link.jitter_ms and not link.delay_ms:
        raise ValueError(f"jitter: {raw['jitter']!r} needs a delay of at least as much")
    return link


def resolve_profile(name, raw):
    """Turn a merged profile mapping into a ``Profile``; errors name the key inside it."""
    problems = []

    def convert(key, parse):
        try:
            return parse(raw[key])
        except KeyError:
            problems.append(f"{key}: missing; a profile needs memory and cpus (or throughput), "
                            "or extends")
        except ValueError as error:
            # Link errors already start with the link key: "link.up: ..." reads as a path.
            problems.append(f"{key}{'.' if key == 'link' else ': '}{error}")
        return None

    memory_bytes = convert("memory", _memory)
    cpus = throughput = None
    if "cpus" in raw and "throughput" in raw:
        problems.append("throughput: give cpus or throughput, not both")
    elif "throughput" in raw:
        throughput = convert("throughput", _throughput)
    else:
        cpus = convert("cpus", _cpus)
    link = convert("link", _link)
    if problems:
        raise ValueError(problems)
    return Profile(name, raw.get("description", ""), memory_bytes, cpus, link, throughput)
