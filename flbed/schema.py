"""Read and check a testbed file.

``load_testbed`` returns a ``Testbed`` or raises ``InputError`` listing every problem at once,
one line each, as ``<field path>: <value> <what is wrong>; <what is allowed>``. Nothing here
touches a host: what depends on the inventory is checked by ``flbed.plan``.
"""

import os
import re
from dataclasses import dataclass, field

import yaml

from . import profiles as profile_lib
from . import units
from .errors import InputError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,22}[a-z0-9]|[a-z]")
NAME_RULE = "1 to 24 characters: lower-case letters, digits and '-', starting with a letter"
HOST_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
MAX_CLIENTS = 500
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 10, 7 * 86400
DEFAULT_TIMEOUT = "30m"
# How long a launched testbed may show no sign of progress before the run is failed.
MIN_FAULT_TIMEOUT_S, MAX_FAULT_TIMEOUT_S = 5, 7 * 86400
DEFAULT_FAULT_TIMEOUT = "60s"
# The pinned upstream FederatedScope used when neither the file nor FLBED_FS_SOURCE names one.
DEFAULT_FS_SOURCE = ("git+https://github.com/alibaba/FederatedScope.git"
                     "@480b67de851df2fa02b7cc2189f1803d947998d7")
FS_SOURCE_ENV = "FLBED_FS_SOURCE"

TOP_KEYS = ("name", "description", "timeout", "fault_timeout", "image", "federatedscope",
            "server", "clients", "profiles", "shaping")
IMAGE_KEYS = ("base", "torch", "packages", "wheelhouse", "ca_bundle", "pip_extra_index_url")
FS_KEYS = ("source", "config", "wait", "throttle_from_start")
# How a waiting participant waits for a message: "blocking" replaces FederatedScope's busy
# loop in flbed's entry point; "spinning" runs the framework untouched.
FS_WAITS = ("blocking", "spinning")
PARTICIPANT_KEYS = ("profile", "host", "env")
CLIENT_KEYS = ("profile", "count", "host", "env")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
SHAPING_KEYS = ("allow_missing", "verify")
SHAPING_SETTINGS = ("delay", "jitter", "loss")


@dataclass(frozen=True)
class Placement:
    """Where one server or client group runs, and as which device."""

    profile: str
    host: str = None
    count: int = 1
    env: dict = field(default_factory=dict)  # extra environment of the participant process


@dataclass
class Testbed:
    name: str
    description: str
    timeout_s: float
    image: dict
    fs_source: str
    fs_config: dict
    server: Placement
    clients: list
    profiles: dict  # name -> profiles.Profile, built-ins and the file's own
    allow_missing: list = field(default_factory=list)
    fs_wait: str = "blocking"
    # False: a participant starts at the host's speed and gets its quota once it listens.
    throttle_from_start: bool = False
    verify_links: bool = False  # measure every link after shaping, before training
    # Seconds the launched testbed may go without any sign of progress before the run fails.
    fault_timeout_s: float = 60.0
    raw: dict = field(default_factory=dict)
    path: str = None

    @property
    def client_count(self):
        return sum(group.count for group in self.clients)


class _Checker:
    """Collects problems with their field paths while reading a raw mapping."""

    def __init__(self):
        self.problems = []

    def add(self, path, message):
        self.problems.append(f"{path}: {message}")

    def mapping(self, value, path, allowed):
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"{_show(value)} is not a mapping; expected keys: {', '.join(allowed)}")
            return {}
        for key in value:
            if key not in allowed:
                self.add(f"{path}.{_key(key)}" if path else _key(key),
                         f"unknown key; allowed here: {', '.join(allowed)}")
        return value

    def string(self, value, path, pattern=None, rule=None, required=False):
        if value is None:
            if required:
                self.add(path, f"missing; {rule or 'a string is required'}")
            return None
        if not isinstance(value, str) or (pattern and not pattern.fullmatch(value)):
            self.add(path, f"{_show(value)} is not allowed; {rule or 'use a string'}")
            return None
        return value

    def convert(self, value, path, parse):
        try:
            return parse(value)
        except ValueError as error:
            self.add(path, str(error))
            return None


def _key(key):
    """A key as it may stand in a field path: plain names as they are, anything else quoted."""
    return key if isinstance(key, str) and re.fullmatch(r"[\w-]{1,40}", key) else _show(key)


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: PyYAML
    keeps the last silently, and of two profiles or settings of one name the file's author
    meant one of them, not necessarily the last."""

    def construct_mapping(self, node, deep=False):
        first_lines = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` keys may be overridden: that is what merging is for
            key = self.construct_object(key_node, deep=deep)
            try:
                first = first_lines.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                continue  # an unhashable key: PyYAML's own check names it
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    problem=f"the key {_show(key)} is given twice in one mapping (first at "
                            f"line {first}); give each key once",
                    problem_mark=key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path):
    """The file's top-level mapping, or InputError naming the file and what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 (a safe loader)
    except OSError as error:
        raise InputError(f"{path}: cannot read the testbed file ({error.strerror})") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise InputError(f"{path}: not valid YAML{line}: "
                         f"{getattr(error, 'problem', None) or error}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the testbed file must be a mapping with keys "
                         f"{', '.join(TOP_KEYS)}; got {type(data).__name__}")
    return data


def load_testbed(path, environ=None):
    """Read, check and convert a testbed file; InputError lists every problem found."""
    testbed = parse_testbed(read_yaml(path), environ=environ,
                            base_dir=os.path.dirname(os.path.abspath(path)))
    testbed.path = os.path.abspath(path)
    return testbed


def parse_testbed(data, environ=None, base_dir="."):
    environ = os.environ if environ is None else environ
    check = _Checker()
    data = check.mapping(data, "", TOP_KEYS)

    name = check.string(data.get("name"), "name", NAME_PATTERN, NAME_RULE, required=True)
    description = check.string(data.get("description"), "description") or ""
    timeout_s = check.convert(data.get("timeout", DEFAULT_TIMEOUT), "timeout", _timeout)
    fault_timeout_s = check.convert(data.get("fault_timeout", DEFAULT_FAULT_TIMEOUT),
                                    "fault_timeout", _fault_timeout)
    image = _image(check, data.get("image"))
    fs_source, fs_config = _federatedscope(check, data.get("federatedscope"), environ, base_dir)
    fs_wait, throttle_from_start = _fs_emulation(check, data.get("federatedscope"))
    profiles = _profiles(check, data.get("profiles"))
    server = _placement(check, data.get("server"), "server", PARTICIPANT_KEYS, profiles)
    clients = _clients(check, data.get("clients"), profiles)
    allow_missing, verify_links = _shaping(check, data.get("shaping"))

    if check.problems:
        raise InputError(check.problems)
    return Testbed(name, description, timeout_s, image, fs_source, fs_config, server, clients,
                   profiles, allow_missing, fs_wait, throttle_from_start,
                   verify_links=verify_links, fault_timeout_s=fault_timeout_s, raw=data)


def _timeout(value):
    seconds = units.parse_duration_s(value)
    if not MIN_TIMEOUT_S <= seconds <= MAX_TIMEOUT_S:
        raise ValueError(f"{value!r} is outside the allowed range 10s to 7d")
    return seconds


def _fault_timeout(value):
    seconds = units.parse_duration_s(value)
    if not MIN_FAULT_TIMEOUT_S <= seconds <= MAX_FAULT_TIMEOUT_S:
        raise ValueError(f"{value!r} is outside the allowed range 5s to 7d")
    return seconds


def _image(check, raw):
    raw = check.mapping(raw, "image", IMAGE_KEYS)
    image = {}
    for key in ("base", "torch", "wheelhouse", "ca_bundle", "pip_extra_index_url"):
        value = check.string(raw.get(key), f"image.{key}")
        if value is not None:
            image[key] = value
    packages = raw.get("packages")
    if packages is not None:
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            check.add("image.packages", f"{_show(packages)} is not allowed; "
                      "use a list of pip requirements, e.g. ['numpy', 'grpcio']")
        else:
            image["packages"] = packages
    return image


def _federatedscope(check, raw, environ, base_dir):
    raw = check.mapping(raw, "federatedscope", FS_KEYS)
    source = check.string(raw.get("source"), "federatedscope.source")
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        check.add("federatedscope.config", f"{_show(config)} is not a mapping of "
                  "FederatedScope keys, e.g. {data: {type: toy}}")
        config = {}
    # The environment wins over the file: it is how tests and CI point at a checkout on disk.
    if environ.get(FS_SOURCE_ENV):
        return _local_or_requirement(environ[FS_SOURCE_ENV], os.getcwd()), config
    if source:
        return _local_or_requirement(source, base_dir), config
    return DEFAULT_FS_SOURCE, config


def _fs_emulation(check, raw):
    """How FederatedScope waits for messages, and whether the CPU quota binds from the start."""
    raw = raw if isinstance(raw, dict) else {}
    wait = raw.get("wait", "blocking")
    if wait not in FS_WAITS:
        check.add("federatedscope.wait", f"{_show(wait)} is not allowed; use one of "
                  f"{', '.join(FS_WAITS)}")
        wait = "blocking"
    from_start = raw.get("throttle_from_start", False)
    if not isinstance(from_start, bool):
        check.add("federatedscope.throttle_from_start", f"{_show(from_start)} is not allowed; "
                  "use true (the quota binds while the framework starts) or false")
        from_start = False
    return wait, from_start


def _local_or_requirement(source, base_dir):
    """A local directory becomes absolute; anything else is a pip requirement, kept as is.

    A relative path counts as local when it starts like one or names a directory that
    exists, so that `FLBED_FS_SOURCE=checkouts/fs` works from where the user stands.
    """
    if source.startswith(("/", "./", "../", "~")) or os.path.isdir(
            os.path.join(base_dir, source)):
        return os.path.abspath(os.path.join(base_dir, os.path.expanduser(source)))
    return source


def _profiles(check, raw):
    if raw is not None and not isinstance(raw, dict):
        check.add("profiles", f"{_show(raw)} is not a mapping of profile names to profiles")
    raw = raw if isinstance(raw, dict) else {}
    resolved = {}
    for name, body in profile_lib.BUILTIN_PROFILES.items():
        resolved[name] = profile_lib.resolve_profile(name, body)
    for name, body in raw.items():
        path = f"profiles.{_key(name)}"
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name.replace("_", "-")):
            check.add(path, f"{_show(name)} is not a profile name; {NAME_RULE} ('_' allowed)")
            continue
        merged = _merge_user_profile(check, path, name, raw, set())
        if merged is None:
            continue
        try:
            resolved[name] = profile_lib.resolve_profile(name, merged)
        except ValueError as error:
            check.problems.extend(f"{path}.{problem}" for problem in error.args[0])
    return resolved


def _merge_user_profile(check, path, name, raw_profiles, seen):
    body = raw_profiles[name]
    body = check.mapping(body, path, profile_lib.PROFILE_KEYS)
    if not isinstance(raw_profiles[name], dict):
        return None
    link = body.get("link")
    if link is not None and check.mapping(link, f"{path}.link", profile_lib.LINK_KEYS) is not link:
        return None
    parent = body.get("extends")
    if parent is None:
        return profile_lib.merge_profile({}, body)
    known = sorted(set(profile_lib.BUILTIN_PROFILES) | {str(key) for key in raw_profiles})
    if not isinstance(parent, str):
        check.add(f"{path}.extends", f"{_show(parent)} is not a profile name; known: "
                  f"{', '.join(known)}")
        return None
    if parent in seen or parent == name:
        check.add(f"{path}.extends", f"{parent!r} makes a cycle of extends")
        return None
    if parent in raw_profiles:
        base = _merge_user_profile(check, f"profiles.{parent}", parent, raw_profiles,
                                   seen | {name})
    else:
        base = profile_lib.BUILTIN_PROFILES.get(parent)
    if base is None:
        check.add(f"{path}.extends", f"unknown profile {_show(parent)}; known: {', '.join(known)}")
        return None
    return profile_lib.merge_profile(base, body)


def _placement(check, raw, path, keys, profiles, count=1):
    if raw is None:
        check.add(path, "missing; give at least a profile, e.g. {profile: edge_server}")
        return None
    if not isinstance(raw, dict):
        check.mapping(raw, path, keys)
        return None
    check.mapping(raw, path, keys)
    profile = raw.get("profile")
    if profile is None:
        check.add(f"{path}.profile", f"missing; known: {', '.join(sorted(profiles))}")
    elif not isinstance(profile, str) or profile not in profiles:
        check.add(f"{path}.profile", f"unknown profile {_show(profile)}; "
                  f"known: {', '.join(sorted(profiles))}")
    host = check.string(raw.get("host"), f"{path}.host", HOST_PATTERN,
                        "an inventory host or group name")
    return Placement(profile, host, count, _env(check, raw.get("env"), f"{path}.env"))


def _env(check, raw, path):
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        check.add(path, f"{_show(raw)} is not a mapping of variable names to values")
        return {}
    env = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not ENV_NAME_PATTERN.fullmatch(key):
            check.add(f"{path}.{_key(key)}", "not a variable name; use letters, digits and '_'")
        elif isinstance(value, (dict, list)) or value is None:
            check.add(f"{path}.{_key(key)}",
                      f"{_show(value)} is not allowed; use a string or number")
        else:
            env[key] = str(value)
    return env


def _clients(check, raw, profiles):
    if not isinstance(raw, list) or not raw:
        check.add("clients", f"{_show(raw)} is not allowed; use a non-empty list such as "
                  "[{profile: smartphone_low, count: 2}]")
        return []
    groups, total = [], 0
    for index, entry in enumerate(raw):
        path = f"clients[{index}]"
        count = entry.get("count", 1) if isinstance(entry, dict) else 1
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CLIENTS:
            check.add(f"{path}.count", f"{_show(count)} is not allowed; "
                      f"use a whole number from 1 to {MAX_CLIENTS}")
            count = 0
        total += count
        group = _placement(check, entry, path, CLIENT_KEYS, profiles, count)
        if group is not None and count:
            groups.append(group)
    if total > MAX_CLIENTS:
        check.add("clients", f"{total} clients in all; at most {MAX_CLIENTS} are allowed")
    return groups


def _shaping(check, raw):
    """(settings allowed to be missing, whether to verify the links before training)."""
    raw = check.mapping(raw, "shaping", SHAPING_KEYS)
    verify = raw.get("verify", False)
    if not isinstance(verify, bool):
        check.add("shaping.verify", f"{_show(verify)} is not allowed; use true or false")
        verify = False
    allowed = raw.get("allow_missing") or []
    if not isinstance(allowed, list) or not set(allowed) <= set(SHAPING_SETTINGS):
        check.add("shaping.allow_missing", f"{_show(allowed)} is not allowed; use a list of "
                  f"settings that may be skipped where the kernel lacks them: "
                  f"{', '.join(SHAPING_SETTINGS)}")
        return [], verify
    return list(allowed), verify
