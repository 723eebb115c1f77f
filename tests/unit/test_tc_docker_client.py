"""Unit tests of the standard-library Docker client: log demultiplexing, label filters."""

import json
import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "module_utils"))

import flbed_docker  # noqa: E402


def frame(stream_id, payload):
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


def test_demultiplex_joins_stdout_and_stderr_frames_in_order():
    raw = frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"bye\n")
    assert flbed_docker.demultiplex_logs(raw) == "hello\noops\nbye\n"


def test_demultiplex_handles_a_frame_longer_than_255_bytes():
    payload = b"x" * 70000 + b"\n"
    assert flbed_docker.demultiplex_logs(frame(1, payload)) == payload.decode()


def test_demultiplex_drops_a_truncated_header_but_keeps_a_truncated_payload():
    raw = frame(1, b"full\n") + struct.pack(">BxxxL", 2, 10) + b"part"
    assert flbed_docker.demultiplex_logs(raw) == "full\npart"
    assert flbed_docker.demultiplex_logs(frame(1, b"a") + b"\x01\x00") == "a"


def test_demultiplex_passes_tty_output_through():
    assert flbed_docker.demultiplex_logs(b"plain tty text\n") == "plain tty text\n"
    assert flbed_docker.demultiplex_logs(b"") == ""


def test_label_filter_encoding():
    encoded = flbed_docker.encode_label_filter({"flbed.testbed": "x", "a": None})
    assert json.loads(encoded) == {"label": ["a", "flbed.testbed=x"]}


def test_list_containers_sends_the_filter_query(monkeypatch):
    seen = {}

    def fake_request(self, path, params=None):
        seen["path"], seen["params"] = path, params
        return 200, b"[]"

    monkeypatch.setattr(flbed_docker.DockerAPI, "_request", fake_request)
    assert flbed_docker.DockerAPI().list_containers(labels={"flbed.testbed": "t1"}) == []
    assert seen["path"] == "/containers/json"
    assert seen["params"]["all"] == "1"
    assert json.loads(seen["params"]["filters"]) == {"label": ["flbed.testbed=t1"]}


def test_inspect_returns_none_on_404_and_raises_on_other_errors(monkeypatch):
    answers = iter([(404, b'{"message": "No such container: x"}'), (500, b'{"message": "boom"}')])
    monkeypatch.setattr(flbed_docker.DockerAPI, "_request", lambda self, p, q=None: next(answers))
    api = flbed_docker.DockerAPI()
    assert api.inspect_container("x") is None
    with pytest.raises(flbed_docker.DockerError, match="500.*boom"):
        api.inspect_container("x")


def test_unreachable_socket_names_the_path(tmp_path):
    api = flbed_docker.DockerAPI(socket_path=str(tmp_path / "missing.sock"), timeout_s=1)
    with pytest.raises(flbed_docker.DockerError, match="missing.sock"):
        api.get_json("/version")
