"""Property-based, through the command line: a broken testbed file given to `flbed run` ends
with exit code 2, one `flbed: FIELD: ...` line per problem naming the broken field (or the
object it belongs to), no traceback, and nothing started: no playbook, no source check, no
run directory."""

import contextlib
import copy
import io
import os
import tempfile
from unittest import mock

import yaml
from hypothesis import given, settings, strategies as st

from flbed import cli
from tests.unit.test_schema_properties import GOOD, JUNK, PATHS, set_path


def field_path(path):
    """A path as the problems name it: clients[0].count, profiles.p.link.up."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


class ReachedHost(Exception):
    """Raised in place of the first step that would act on a host."""


def run_flbed_on(text):
    """`flbed run FILE` on a file of this text, with every way of acting on a host replaced
    by ReachedHost; returns (exit code or ReachedHost, stderr lines, whether a run directory
    was made)."""
    with tempfile.TemporaryDirectory() as folder, \
            mock.patch.object(cli, "run_playbook", side_effect=ReachedHost), \
            mock.patch.object(cli, "check_fs_source", side_effect=ReachedHost), \
            contextlib.redirect_stderr(io.StringIO()) as stderr:
        path = os.path.join(folder, "broken.yml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        runs_root = os.path.join(folder, "runs")
        try:
            code = cli.main(["run", path, "--runs-root", runs_root])
        except ReachedHost:
            code = ReachedHost
        made_runs = os.path.exists(runs_root)
    return code, stderr.getvalue().splitlines(), made_runs


def assert_refused(code, lines, made_runs):
    assert code == cli.EXIT_BAD_INPUT, lines
    assert lines and all(line.startswith("flbed: ") for line in lines), lines
    assert not any("Traceback" in line for line in lines)
    assert not made_runs


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(PATHS), value=JUNK)
def test_a_broken_field_is_refused_naming_it_and_nothing_starts(path, value):
    data = copy.deepcopy(GOOD)
    set_path(data, path, value)

    code, lines, made_runs = run_flbed_on(yaml.safe_dump(data))

    if code is ReachedHost:
        return  # the junk happened to be a valid value, so the run went on to the hosts
    assert_refused(code, lines, made_runs)
    # A problem names the broken field, or the object it belongs to (a profile whose
    # `extends` became null is told what it lacks): profiles.p, clients[0], server.
    owner = field_path(path[:2])
    fields = [line[len("flbed: "):].split(": ", 1)[0] for line in lines]
    assert any(f.startswith(owner) or owner.startswith(f) for f in fields), (path, lines)


MAPPINGS = [(), ("server",), ("clients", 0), ("profiles",), ("profiles", "p"),
            ("profiles", "p", "link"), ("federatedscope",), ("federatedscope", "config")]


@settings(max_examples=60, deadline=None)
@given(where=st.sampled_from(MAPPINGS), data=st.data())
def test_a_key_given_twice_is_refused_with_its_line(where, data):
    document = copy.deepcopy(GOOD)
    node = document
    for key in where:
        node = node[key]
    key = data.draw(st.sampled_from(sorted(node)))
    marker = "__twice__"
    node[marker] = node[key]
    text = yaml.safe_dump(document, default_flow_style=False, sort_keys=False)
    text = text.replace(f"{marker}:", f"{key}:", 1)  # YAML text holding the key twice

    code, lines, made_runs = run_flbed_on(text)

    assert_refused(code, lines, made_runs)
    assert len(lines) == 1 and f"the key {key!r} is given twice" in lines[0], lines


@settings(max_examples=40, deadline=None)
@given(document=JUNK.filter(lambda document: not isinstance(document, dict)))
def test_a_file_that_is_not_a_mapping_is_refused(document):
    code, lines, made_runs = run_flbed_on(yaml.safe_dump(document))

    assert_refused(code, lines, made_runs)
    assert len(lines) == 1 and "must be a mapping" in lines[0], lines
