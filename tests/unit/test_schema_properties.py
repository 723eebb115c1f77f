"""Property-based: every broken testbed is refused with field-named problems, never a crash."""

import copy

from hypothesis import given, settings, strategies as st

from flbed import schema
from flbed.errors import InputError

GOOD = {
    "name": "demo",
    "timeout": "10m",
    "federatedscope": {"config": {"data": {"type": "toy"}}},
    "server": {"profile": "edge_server"},
    "clients": [{"profile": "smartphone_low", "count": 2}],
    "profiles": {"p": {"extends": "iot_minimal", "memory": "512m",
                       "link": {"up": "1mbit", "delay": "10ms"}}},
    "shaping": {"allow_missing": ["delay"]},
    "image": {"packages": ["numpy"]},
}
PATHS = [
    ("name",), ("timeout",), ("federatedscope",), ("federatedscope", "source"),
    ("federatedscope", "config"), ("server",), ("server", "profile"), ("server", "host"),
    ("clients",), ("clients", 0), ("clients", 0, "count"), ("clients", 0, "profile"),
    ("clients", 0, "env"), ("profiles",), ("profiles", "p"), ("profiles", "p", "memory"),
    ("profiles", "p", "cpus"), ("profiles", "p", "extends"), ("profiles", "p", "link"),
    ("profiles", "p", "link", "up"), ("profiles", "p", "link", "loss"), ("shaping",),
    ("shaping", "allow_missing"), ("image",), ("image", "packages"),
]
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True), st.text(max_size=30), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from(["-1mbit", "101%", "0", "lots", "1e9", "../../etc", "a;rm -rf /",
                     "$(reboot)", "x" * 200, "Ünïcode", 10**9]),
)


def set_path(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@settings(max_examples=400, deadline=None)
@given(path=st.sampled_from(PATHS), value=JUNK)
def test_a_broken_field_is_named_or_the_file_is_still_valid(path, value):
    data = copy.deepcopy(GOOD)
    set_path(data, path, value)
    try:
        testbed = schema.parse_testbed(data, environ={})
    except InputError as error:
        assert error.problems
        for problem in error.problems:
            assert ": " in problem and "\n" not in problem
        return
    # Accepted: then everything the testbed names is safe to put in names, paths and commands.
    assert schema.NAME_PATTERN.fullmatch(testbed.name)
    assert testbed.client_count >= 1


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=10).filter(
    lambda key: key not in schema.TOP_KEYS), JUNK, min_size=1, max_size=3))
def test_unknown_top_level_keys_are_refused(extra):
    data = {**copy.deepcopy(GOOD), **extra}
    try:
        schema.parse_testbed(data, environ={})
    except InputError as error:
        assert any("unknown key" in problem for problem in error.problems)
    else:
        raise AssertionError(f"accepted unknown keys {sorted(extra)}")


@settings(max_examples=200, deadline=None)
@given(document=JUNK)
def test_a_document_that_is_not_a_mapping_is_refused(document):
    try:
        schema.parse_testbed(document, environ={})
    except InputError as error:
        assert error.problems
    else:
        raise AssertionError(f"accepted {document!r}")
