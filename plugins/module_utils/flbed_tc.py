# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of link shaping: validate a link, size the qdiscs, read `tc -j`, plan commands.

Nothing here runs a command, so all of it is unit-testable. The module flbed_link runs what
this plans, inside the participant's network namespace.

Vocabulary. A *link* is one participant's access link, given in plain numbers (the controller
has already parsed units). It has two *directions*: upload is the egress of the participant's
interface; download is its ingress, redirected to an ifb device whose egress is shaped. Each
direction is either unshaped (None) or a dict with the rate shaper and an optional netem part.

Delay, jitter, loss, duplication, corruption and reordering describe the access link and are
applied in each direction: `delay_ms` is one-way, so a round trip through one shaped link
takes twice `delay_ms`, and `loss_pct` applies to each direction separately.

Rate shaper: TBF. A participant's direction has exactly one rate and no traffic classes, which
is what TBF does with one qdisc; HTB would add a class tree that buys nothing here, and on the
test machines HTB undershot by 8 % at 256 kbit-1 mbit and warned about its quantum at 1 gbit,
while TBF stayed within the ~4.4 % TCP/frame overhead at all rates.
"""

import itertools
import json
import math
import shlex

LINK_SETTINGS = (
    "up_rate_bps", "down_rate_bps", "delay_ms", "jitter_ms", "jitter_distribution",
    "loss_pct", "loss_correlation_pct", "duplicate_pct", "corrupt_pct", "reorder_pct",
)
# Settings that need the kernel's netem qdisc.
NETEM_SETTINGS = (
    "delay_ms", "jitter_ms", "jitter_distribution", "loss_pct", "loss_correlation_pct",
    "duplicate_pct", "corrupt_pct", "reorder_pct",
)
JITTER_DISTRIBUTIONS = ("normal", "pareto", "paretonormal", "uniform")
DEFAULT_JITTER_DISTRIBUTION = "normal"

RATE_MIN_BPS = 8000               # 8 kbit/s: below this one full frame takes > 1.5 s
RATE_MAX_BPS = 100 * 10 ** 9      # 100 gbit/s: beyond any host this runs on
DELAY_MAX_MS = 60000.0            # one minute; more is a configuration mistake

# Kernel timer frequency assumed when sizing the burst. Debian and Raspberry Pi OS kernels use
# 250 Hz; a faster timer only makes the burst more generous than strictly needed.
KERNEL_HZ = 250
# A full Ethernet frame (1500 MTU + 14 header) plus slack for VLAN tags; the burst must hold
# at least one, or TBF drops every full-sized packet.
FRAME_BYTES = 1514
BURST_SLACK_BYTES = 1600
# The rate queue holds this much time of traffic, and never fewer than this many frames: small
# enough to keep queueing delay bounded, large enough that TCP reaches the rate.
QUEUE_TIME_MS = 100
QUEUE_MIN_FRAMES = 4
NETEM_MIN_LIMIT_PACKETS = 1000    # netem's own default

ROOT_HANDLE = "1:"
NETEM_HANDLE = "10:"
INGRESS_HANDLE = "ffff:"
# Root qdiscs the kernel installs by itself: their presence means "nobody shaped this".
DEFAULT_ROOT_KINDS = ("noqueue", "pfifo_fast", "mq", "fq_codel", "fq", "pfifo", "noop")

IFNAMSIZ_MAX = 15


class LinkError(ValueError):
    """A link setting is out of range; the message names the value and what is allowed."""


# ---------------------------------------------------------------- validation

def _number(link, name):
    value = link.get(name)
    return 0 if value is None else value


def _range_error(name, value, allowed):
    return "%s=%r is not allowed; allowed: %s" % (name, value, allowed)


def validate_link(link):
    """Return a list of messages, one per bad setting of `link` (empty when all is fine)."""
    errors = []
    for name in ("up_rate_bps", "down_rate_bps"):
        rate = _number(link, name)
        if rate != 0 and not RATE_MIN_BPS <= rate <= RATE_MAX_BPS:
            errors.append(_range_error(
                name, rate, "0 (unshaped) or %d..%d bit/s" % (RATE_MIN_BPS, RATE_MAX_BPS)))
    for name in ("delay_ms", "jitter_ms"):
        value = _number(link, name)
        if not 0 <= value <= DELAY_MAX_MS:
            errors.append(_range_error(name, value, "0..%g ms" % DELAY_MAX_MS))
    for name in ("loss_pct", "loss_correlation_pct", "duplicate_pct", "corrupt_pct",
                 "reorder_pct"):
        value = _number(link, name)
        if not 0 <= value <= 100:
            errors.append(_range_error(name, value, "0..100 (percent)"))
    distribution = link.get("jitter_distribution")
    if distribution is not None and distribution not in JITTER_DISTRIBUTIONS:
        errors.append(_range_error("jitter_distribution", distribution,
                                   ", ".join(JITTER_DISTRIBUTIONS)))
    for name in ("jitter_ms", "reorder_pct"):
        if _number(link, name) > 0 and _number(link, "delay_ms") <= 0:
            errors.append("%s=%r needs a delay; set delay_ms > 0 (netem varies or reorders "
                          "only delayed packets)" % (name, link.get(name)))
    return errors


def ifb_name(interface):
    """The ifb device that carries `interface`'s download, named so it plainly is flbed's."""
    name = "ifb-flbed" if interface == "eth0" else "ifb-flbed-" + interface
    return name[:IFNAMSIZ_MAX]


def netem_settings_set(link):
    """Names of the netem settings that `link` actually uses (non-zero)."""
    names = [n for n in NETEM_SETTINGS if n != "jitter_distribution" and _number(link, n)]
    if _number(link, "jitter_ms") and link.get("jitter_distribution"):
        names.append("jitter_distribution")
    return names


# ---------------------------------------------------------------- sizing

def burst_bytes(rate_bps):
    """Bucket size: one timer tick of traffic plus a full frame, so the rate holds at any HZ."""
    return int(rate_bps // 8 // KERNEL_HZ + BURST_SLACK_BYTES)


def queue_limit_bytes(rate_bps):
    """Bytes TBF may queue: QUEUE_TIME_MS of traffic, at least QUEUE_MIN_FRAMES frames."""
    queued = max(rate_bps // 8 * QUEUE_TIME_MS // 1000, QUEUE_MIN_FRAMES * FRAME_BYTES)
    return int(burst_bytes(rate_bps) + queued)


def netem_limit_packets(rate_bps, netem):
    """netem holds every packet for its delay, so its queue must cover the rate times the
    longest delay (delay + 2 jitter) plus the rate queue, counted in full frames."""
    if not rate_bps:
        return NETEM_MIN_LIMIT_PACKETS
    held_ms = netem["delay_ms"] + 2 * netem["jitter_ms"] + QUEUE_TIME_MS
    frames = math.ceil(rate_bps / 8.0 * held_ms / 1000.0 / FRAME_BYTES)
    return max(NETEM_MIN_LIMIT_PACKETS, int(frames))


def wanted_netem(link, skip=()):
    """The netem part of a direction, or None when no netem setting is used (or all skipped)."""
    used = [n for n in netem_settings_set(link) if n not in skip]
    if not used:
        return None
    netem = {name: float(_number(link, name)) if name not in skip else 0.0
             for name in NETEM_SETTINGS if name != "jitter_distribution"}
    distribution = None
    if netem["jitter_ms"] and "jitter_distribution" not in skip:
        distribution = link.get("jitter_distribution") or DEFAULT_JITTER_DISTRIBUTION
    netem["jitter_distribution"] = distribution
    if not netem["loss_pct"]:
        netem["loss_correlation_pct"] = 0.0
    return netem


def wanted_direction(rate_bps, netem):
    """A direction's shaping from its rate (0 = unshaped) and netem part; None if neither."""
    rate_bps = int(rate_bps or 0)
    if not rate_bps and netem is None:
        return None
    direction = {"rate_bps": rate_bps, "burst_bytes": 0, "queue_limit_bytes": 0,
                 "netem": None}
    if rate_bps:
        direction["burst_bytes"] = burst_bytes(rate_bps)
        direction["queue_limit_bytes"] = queue_limit_bytes(rate_bps)
    if netem is not None:
        direction["netem"] = dict(netem, limit_packets=netem_limit_packets(rate_bps, netem))
    return direction


def wanted_link(link, skip=(), download_possible=True):
    """{"upload": direction, "download": direction} for `link`, leaving out `skip`ped settings.

    `download_possible` False (no ifb on this kernel) leaves the download unshaped.
    """
    netem = wanted_netem(link, skip)
    upload = wanted_direction(0 if "up_rate_bps" in skip else _number(link, "up_rate_bps"),
                              netem)
    download = None
    if download_possible:
        down_rate = 0 if "down_rate_bps" in skip else _number(link, "down_rate_bps")
        download = wanted_direction(down_rate, netem)
    return {"upload": upload, "download": download}


# ---------------------------------------------------------------- command text

def _num(value):
    """12.0 -> '12', 0.5 -> '0.5': what tc reads, without float noise."""
    text = ("%.6f" % value).rstrip("0").rstrip(".")
    return text or "0"


def netem_args(netem):
    args = ["netem", "limit", str(netem["limit_packets"])]
    if netem["delay_ms"]:
        args += ["delay", _num(netem["delay_ms"]) + "ms"]
        if netem["jitter_ms"]:
            args.append(_num(netem["jitter_ms"]) + "ms")
            if netem["jitter_distribution"] not in (None, "uniform"):
                args += ["distribution", netem["jitter_distribution"]]
    if netem["loss_pct"]:
        args += ["loss", "random", _num(netem["loss_pct"]) + "%"]
        if netem["loss_correlation_pct"]:
            args.append(_num(netem["loss_correlation_pct"]) + "%")
    for name, keyword in (("duplicate_pct", "duplicate"), ("corrupt_pct", "corrupt"),
                          ("reorder_pct", "reorder")):
        if netem[name]:
            args += [keyword, _num(netem[name]) + "%"]
    return args


def shaping_commands(dev, direction):
    """tc argv lists that build `direction` on an empty root of `dev`."""
    if direction is None:
        return []
    netem = direction["netem"]
    if not direction["rate_bps"]:
        return [["tc", "qdisc", "add", "dev", dev, "root", "handle", NETEM_HANDLE]
                + netem_args(netem)]
    commands = [["tc", "qdisc", "add", "dev", dev, "root", "handle", ROOT_HANDLE, "tbf",
                 "rate", "%dbit" % direction["rate_bps"],
                 "burst", "%db" % direction["burst_bytes"],
                 "limit", "%db" % direction["queue_limit_bytes"]]]
    if netem is not None:
        commands.append(["tc", "qdisc", "add", "dev", dev, "parent", ROOT_HANDLE + "1",
                         "handle", NETEM_HANDLE] + netem_args(netem))
    return commands


def ingress_plumbing_commands(dev, ifb):
    """Create the ifb and send everything arriving on `dev` through it."""
    return [
        ["ip", "link", "add", ifb, "type", "ifb"],
        ["ip", "link", "set", "dev", ifb, "up"],
        ["tc", "qdisc", "add", "dev", dev, "handle", INGRESS_HANDLE, "ingress"],
        ["tc", "filter", "add", "dev", dev, "parent", INGRESS_HANDLE, "protocol", "all",
         "prio", "1", "u32", "match", "u32", "0", "0",
         "action", "mirred", "egress", "redirect", "dev", ifb],
    ]


def ingress_teardown_commands(dev, ifb, actual):
    """Remove whatever download plumbing `actual` shows (removing the ifb drops its qdiscs)."""
    commands = []
    if actual["ingress_qdisc"]:
        commands.append(["tc", "qdisc", "del", "dev", dev, "ingress"])
    if actual["ifb_exists"]:
        commands.append(["ip", "link", "del", "dev", ifb])
    return commands


def _root_delete(dev):
    return ["tc", "qdisc", "del", "dev", dev, "root"]


# ---------------------------------------------------------------- reading tc -j

def _major(handle):
    return (handle or "").split(":")[0]


def parse_netem(options):
    """netem options of `tc -j` (seconds and fractions) -> the netem part (ms and percent)."""
    delay = options.get("delay") or {}

    def pct(key, field, inner="correlation"):
        part = options.get(key) or {}
        return round(float(part.get(field, 0)) * 100, 6), round(float(part.get(inner, 0)) * 100, 6)

    loss_pct, loss_correlation_pct = pct("loss-random", "loss")
    return {
        "delay_ms": round(float(delay.get("delay", 0)) * 1000, 6),
        "jitter_ms": round(float(delay.get("jitter", 0)) * 1000, 6),
        "jitter_distribution": None,  # tc does not report the distribution table
        "loss_pct": loss_pct,
        "loss_correlation_pct": loss_correlation_pct,
        "duplicate_pct": pct("duplicate", "duplicate")[0],
        "corrupt_pct": pct("corrupt", "corrupt")[0],
        "reorder_pct": pct("reorder", "reorder")[0],
        "limit_packets": int(options.get("limit", 0)),
    }


def parse_direction(qdiscs):
    """The shaping that `tc -j qdisc show dev X` shows on X's egress.

    Returns None when the root is the kernel's default, a direction dict when it is a TBF
    (with or without a netem child) or a root netem, and {"foreign": kind} for anything else,
    which flbed replaces.
    """
    root = next((q for q in qdiscs if q.get("root")), None)
    if root is None or (root["kind"] in DEFAULT_ROOT_KINDS and _major(root["handle"]) == "0"):
        return None
    options = root.get("options") or {}
    if root["kind"] == "netem":
        return {"rate_bps": 0, "burst_bytes": 0, "queue_limit_bytes": 0,
                "netem": parse_netem(options)}
    if root["kind"] != "tbf":
        return {"foreign": root["kind"]}

    rate_Bps = int(options.get("rate", 0))
    burst = int(options.get("burst", 0))
    queued = float(options.get("lat", 0)) * rate_Bps / 1e6
    direction = {"rate_bps": rate_Bps * 8, "burst_bytes": burst,
                 "queue_limit_bytes": int(round(burst + queued)), "netem": None}
    children = [q for q in qdiscs if _major(q.get("parent")) == _major(root["handle"])
                and not q.get("root")]
    for child in children:
        if child["kind"] != "netem":
            return {"foreign": "tbf with %s child" % child["kind"]}
        direction["netem"] = parse_netem(child.get("options") or {})
    return direction


def redirects_to(filters, ifb):
    """True when the ingress filters are exactly flbed's: one u32 match-all -> mirred to ifb."""
    rules = [f for f in filters if (f.get("options") or {}).get("actions")]
    if len(rules) != 1 or rules[0].get("kind") != "u32":
        return False
    options = rules[0]["options"]
    match = options.get("match") or {}
    if str(match.get("value")) != "0" or str(match.get("mask")) != "0":
        return False
    actions = options["actions"]
    return (len(actions) == 1 and actions[0].get("kind") == "mirred"
            and actions[0].get("mirred_action") == "redirect"
            and actions[0].get("direction") == "egress"
            and actions[0].get("to_dev") == ifb)


def read_state(dev_qdiscs, dev_filters, links, ifb_qdiscs, ifb):
    """Everything flbed_link compares, from `tc -j qdisc show dev X`, `tc -j filter show dev X
    ingress`, `ip -j link show` and `tc -j qdisc show dev IFB` (empty when no ifb)."""
    ifb_link = next((link for link in links if link.get("ifname") == ifb), None)
    return {
        "upload": parse_direction(dev_qdiscs),
        "ingress_qdisc": any(q.get("kind") == "ingress" for q in dev_qdiscs),
        "redirect_ok": redirects_to(dev_filters, ifb),
        "ifb_exists": ifb_link is not None,
        "ifb_up": ifb_link is not None and "UP" in (ifb_link.get("flags") or []),
        "download": parse_direction(ifb_qdiscs) if ifb_link is not None else None,
    }


# ---------------------------------------------------------------- comparing and planning

def _close(wanted, actual, rel=0.0, absolute=0.0):
    return abs(wanted - actual) <= max(absolute, abs(wanted) * rel)


def netem_matches(wanted, actual):
    """Compare netem parts; the distribution is not compared because tc cannot report it."""
    if wanted is None or actual is None:
        return wanted is actual
    for name in ("delay_ms", "jitter_ms"):
        if not _close(wanted[name], actual[name], absolute=0.01):
            return False
    for name in ("loss_pct", "loss_correlation_pct", "duplicate_pct", "corrupt_pct",
                 "reorder_pct"):
        if not _close(wanted[name], actual[name], absolute=0.001):
            return False
    return wanted["limit_packets"] == actual["limit_packets"]


def direction_matches(wanted, actual):
    """Does the kernel's `actual` direction do what `wanted` asks (within tc's rounding)?"""
    if wanted is None or actual is None:
        return wanted is None and actual is None
    if "foreign" in actual:
        return False
    # tc stores the rate in bytes/s and the burst as transmission time, so both round a bit.
    return (_close(wanted["rate_bps"], actual["rate_bps"], rel=0.001, absolute=8)
            and _close(wanted["burst_bytes"], actual["burst_bytes"], rel=0.01, absolute=64)
            and _close(wanted["queue_limit_bytes"], actual["queue_limit_bytes"],
                       rel=0.01, absolute=64)
            and netem_matches(wanted["netem"], actual["netem"]))


def download_plumbing_ok(actual):
    return (actual["ingress_qdisc"] and actual["redirect_ok"] and actual["ifb_exists"]
            and actual["ifb_up"])


def plan_present(wanted, actual, dev, ifb):
    """The argv lists that turn `actual` into `wanted`; empty when they already agree.

    A direction that differs in any part is rebuilt whole: it is a few commands, and a
    half-changed qdisc tree is harder to reason about than a fresh one.
    """
    commands = []
    if not direction_matches(wanted["upload"], actual["upload"]):
        if actual["upload"] is not None:
            commands.append(_root_delete(dev))
        commands += shaping_commands(dev, wanted["upload"])

    download = wanted["download"]
    if download is None:
        commands += ingress_teardown_commands(dev, ifb, actual)
    elif not download_plumbing_ok(actual):
        commands += ingress_teardown_commands(dev, ifb, actual)
        commands += ingress_plumbing_commands(dev, ifb) + shaping_commands(ifb, download)
    elif not direction_matches(download, actual["download"]):
        if actual["download"] is not None:
            commands.append(_root_delete(ifb))
        commands += shaping_commands(ifb, download)
    return commands


def plan_absent(actual, dev, ifb):
    """The argv lists that leave `dev` with the kernel's default qdiscs and no ifb."""
    commands = [_root_delete(dev)] if actual["upload"] is not None else []
    return commands + ingress_teardown_commands(dev, ifb, actual)


# ---------------------------------------------------------------- reporting

def direction_view(direction):
    """A direction as the user thinks of it, for diffs and return values."""
    if direction is None:
        return "unshaped"
    if "foreign" in direction:
        return {"foreign_qdisc": direction["foreign"]}
    view = {"rate_bps": direction["rate_bps"]}
    if direction["rate_bps"]:
        view["burst_bytes"] = direction["burst_bytes"]
        view["queue_limit_bytes"] = direction["queue_limit_bytes"]
    netem = direction["netem"]
    if netem is not None:
        for name in NETEM_SETTINGS:
            if name != "jitter_distribution" and netem[name]:
                view[name] = netem[name]
        view["netem_limit_packets"] = netem["limit_packets"]
    return view


def link_view(upload, download):
    return {"upload": direction_view(upload), "download": direction_view(download)}


# ---------------------------------------------------------------- one process per namespace
#
# Entering a namespace and starting tc costs a few milliseconds each time, which adds up over
# dozens of participants. So the module reads a namespace's whole state with one script, and
# applies its commands with one `tc -batch` / `ip -batch` per run of commands of one tool,
# followed by the re-read, again in one script.

STATE_MARK = "@@flbed-state"
STATE_PARTS = ("links", "qdiscs", "filters")
BATCH_TOOLS = ("tc", "ip")


def state_script(dev):
    """A shell script printing the namespace's links, all its qdiscs and `dev`'s ingress
    filters as `tc -j`/`ip -j` JSON, each part closed by a mark line with its exit code."""
    commands = ("ip -j link show", "tc -j qdisc show",
                "tc -j filter show dev %s ingress" % shlex.quote(dev))
    return "".join("%s; echo; echo %s %s $?\n" % (command, STATE_MARK, part)
                   for part, command in zip(STATE_PARTS, commands))


def split_state_output(out):
    """{part: (exit code, text)} from what state_script printed; parts not reached are absent."""
    parts, lines = {}, []
    for line in out.splitlines():
        if line.startswith(STATE_MARK + " "):
            _mark, part, code = line.split()
            parts[part] = (int(code), "\n".join(lines).strip())
            lines = []
        else:
            lines.append(line)
    return parts


def state_from_parts(parts, dev, ifb):
    """read_state() from split_state_output(); ValueError names the part that is missing,
    failed or is not JSON."""
    loaded = {}
    for part in STATE_PARTS:
        if part not in parts:
            raise ValueError("reading the %s stopped before it printed anything" % part)
        code, text = parts[part]
        if code != 0:
            raise ValueError("reading the %s failed with exit code %d" % (part, code))
        try:
            loaded[part] = json.loads(text) if text else []
        except ValueError:
            raise ValueError("the %s are not JSON: %r" % (part, text[:200]))
    qdiscs = loaded["qdiscs"]
    return read_state(qdiscs_of(qdiscs, dev), loaded["filters"], loaded["links"],
                      qdiscs_of(qdiscs, ifb), ifb)


def interface_names(parts):
    """Interface names in the links part of split_state_output(), or [] when unreadable."""
    code, text = parts.get("links", (1, ""))
    try:
        return [link.get("ifname") for link in json.loads(text)] if code == 0 else []
    except ValueError:
        return []


def qdiscs_of(qdiscs, dev):
    """The entries of `tc -j qdisc show` (all devices) that belong to `dev`."""
    return [q for q in qdiscs if q.get("dev") == dev]


def batch_script(commands):
    """A shell script that runs `commands` (tc and ip argv lists, in order) with one
    `tc -batch -` or `ip -batch -` per run of consecutive commands of the same tool and
    stops with the tool's exit code at the first one that fails."""
    blocks = []
    for tool, group in itertools.groupby(commands, key=lambda argv: argv[0]):
        if tool not in BATCH_TOOLS:
            raise ValueError("cannot batch %r; only %s" % (tool, ", ".join(BATCH_TOOLS)))
        lines = "\n".join(" ".join(shlex.quote(arg) for arg in argv[1:]) for argv in group)
        blocks.append("%s -batch - <<'FLBED_END' || exit $?\n%s\nFLBED_END\n" % (tool, lines))
    return "".join(blocks)


def format_commands(commands):
    """argv lists -> shell-like lines, for messages and dry-run output."""
    return [" ".join(argv) for argv in commands]
