# -*- coding: utf-8 -*-
# Copyright: flbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A very small Docker Engine API client, standard library only.

Modules run on managed hosts (a Raspberry Pi among them) that may have a Docker engine but no
Docker SDK for Python, so this speaks HTTP over the engine's unix socket itself. It covers
only the calls flbed's modules need: inspect containers and images, list by label, logs,
update a running container's resources, and create, start and remove containers.

Paths carry no API version ("/containers/json"), so any engine answers with its own default.
"""

import http.client
import json
import socket
import struct
from urllib.parse import quote, urlencode

DEFAULT_SOCKET_PATH = "/var/run/docker.sock"

# Stream ids of the multiplexed log format (stdin never appears in logs).
_STREAM_STDOUT = 1
_STREAM_STDERR = 2
_FRAME_HEADER_BYTES = 8


class DockerError(Exception):
    """The engine could not be reached or answered with an error status."""

    def __init__(self, message, status=None):
        super(DockerError, self).__init__(message)
        self.status = status


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose transport is a unix stream socket."""

    def __init__(self, socket_path, timeout_s):
        super(_UnixHTTPConnection, self).__init__("localhost", timeout=timeout_s)
        self._socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def encode_label_filter(labels):
    """Return the `filters` query value selecting containers that carry all `labels`.

    {"flbed.testbed": "x"} -> '{"label": ["flbed.testbed=x"]}'. A label whose value is None
    matches on the key alone.
    """
    terms = []
    for key in sorted(labels or {}):
        value = labels[key]
        terms.append(key if value is None else "%s=%s" % (key, value))
    return json.dumps({"label": terms}, sort_keys=True)


def demultiplex_logs(raw):
    """Join the frames of a multiplexed log stream into one text.

    Without a TTY the engine prefixes each chunk with an 8-byte header: stream id (1 byte),
    3 zero bytes, payload length (4 bytes, big endian). With a TTY the stream is plain, which
    is recognised by a first byte that is not a valid stream id.
    """
    if not raw:
        return ""
    if raw[0] not in (0, _STREAM_STDOUT, _STREAM_STDERR) or raw[1:4] != b"\x00\x00\x00":
        return raw.decode("utf-8", errors="replace")

    chunks = []
    offset = 0
    while offset + _FRAME_HEADER_BYTES <= len(raw):
        _stream, length = struct.unpack(">BxxxL", raw[offset:offset + _FRAME_HEADER_BYTES])
        offset += _FRAME_HEADER_BYTES
        chunks.append(raw[offset:offset + length])
        offset += length
    return b"".join(chunks).decode("utf-8", errors="replace")


class DockerAPI:
    """Calls against one Docker engine."""

    def __init__(self, socket_path=DEFAULT_SOCKET_PATH, timeout_s=30.0):
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    def _request(self, path, params=None, method="GET", body=None):
        url = path
        if params:
            url += "?" + urlencode(params)
        headers = {"Host": "docker"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        conn = _UnixHTTPConnection(self.socket_path, self.timeout_s)
        try:
            conn.request(method, url, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError as exc:
            raise DockerError("cannot reach the Docker engine at %s: %s"
                              % (self.socket_path, exc))
        finally:
            conn.close()

    @staticmethod
    def _error_text(body):
        try:
            return json.loads(body.decode("utf-8")).get("message", "")
        except (ValueError, AttributeError, UnicodeDecodeError):
            return body.decode("utf-8", errors="replace").strip()

    def _get_raw(self, path, params=None):
        status, body = self._request(path, params)
        if status >= 400:
            raise DockerError("Docker engine answered %s to GET %s: %s"
                              % (status, path, self._error_text(body)), status=status)
        return body

    def get_json(self, path, params=None):
        """GET `path` and return the decoded JSON body."""
        body = self._get_raw(path, params)
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError as exc:
            raise DockerError("Docker engine sent invalid JSON for GET %s: %s" % (path, exc))

    def inspect_container(self, name_or_id):
        """Return the container's inspect dict, or None when no such container exists."""
        try:
            return self.get_json("/containers/%s/json" % quote(name_or_id, safe=""))
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise

    def list_containers(self, labels=None, all=True):
        """Return the /containers/json entries, optionally only those carrying `labels`."""
        params = {"all": "1" if all else "0"}
        if labels:
            params["filters"] = encode_label_filter(labels)
        return self.get_json("/containers/json", params)

    def _call(self, method, path, params=None, body=None):
        """Send a request that changes something; return the decoded JSON answer ({} when
        the engine sends none, as for start and remove)."""
        status, answer = self._request(path, params, method=method, body=body)
        if status >= 400:
            raise DockerError("Docker engine answered %s to %s %s: %s"
                              % (status, method, path, self._error_text(answer)),
                              status=status)
        try:
            return json.loads(answer.decode("utf-8") or "{}")
        except ValueError as exc:
            raise DockerError("Docker engine sent invalid JSON for %s %s: %s"
                              % (method, path, exc))

    def update_container(self, name_or_id, resources):
        """Change a running container's resources in place, e.g. {"NanoCpus": 500000000}."""
        return self._call("POST", "/containers/%s/update" % quote(name_or_id, safe=""),
                          body=resources)

    def inspect_image(self, reference):
        """Return the image's inspect dict, or None when the engine has no such image."""
        try:
            return self.get_json("/images/%s/json" % quote(reference, safe=""))
        except DockerError as exc:
            if exc.status == 404:
                return None
            raise

    def create_container(self, name, body):
        """Create (not start) a container called `name` from the create body `body`;
        return the engine's answer, {"Id": ..., "Warnings": [...]}."""
        return self._call("POST", "/containers/create", params={"name": name}, body=body)

    def start_container(self, name_or_id):
        """Start a created or stopped container (an already running one is left as it is)."""
        self._call("POST", "/containers/%s/start" % quote(name_or_id, safe=""))

    def remove_container(self, name_or_id):
        """Remove a container, killing it first when it runs."""
        self._call("DELETE", "/containers/%s" % quote(name_or_id, safe=""),
                   params={"force": "1"})

    def container_logs(self, name_or_id, tail=200):
        """Return the last `tail` lines of stdout and stderr as one text."""
        params = {"stdout": "1", "stderr": "1", "tail": str(tail)}
        raw = self._get_raw("/containers/%s/logs" % quote(name_or_id, safe=""), params)
        return demultiplex_logs(raw)
