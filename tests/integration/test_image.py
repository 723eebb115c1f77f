"""The fl_image role through a real ansible-playbook against the local Docker engine.

The FederatedScope source is a copy of the stand-in (tests/fs_standin) in a fresh temporary
directory, so every run builds a participant image of its own; that image is removed at the
end. The base image (flbed/base:...) and the controller's wheelhouse cache are kept on purpose:
they are caches, and the first build of each takes a minute or more.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "tests" / "fs_standin"
WHEELHOUSE_CACHE = Path(os.environ.get("FLBED_TEST_WHEELHOUSE_CACHE",
                                       REPO / ".cache" / "wheelhouse"))

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  roles:
    - role: fl_image
  post_tasks:
    - name: Print the image reference
      ansible.builtin.debug:
        msg: "FLBED_IMAGE_REF={{ fl_image_ref }}"
"""


def ansible_playbook():
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if found is None:
        pytest.skip("needs ansible-playbook (pip install ansible)")
    return found


def require_docker():
    if shutil.which("docker") is None:
        pytest.skip("needs the docker command line client to inspect the image")
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("needs a running Docker engine: " + probe.stderr.strip()[-200:])
    # community.docker's modules need the SDK in the managed host's Python, here this one.
    if importlib.util.find_spec("docker") is None:
        pytest.skip("needs the docker Python SDK in " + sys.executable)


def make_fs_source(tmp_path):
    source = tmp_path / "fs_source"
    if (STANDIN / "pyproject.toml").exists():
        shutil.copytree(STANDIN, source, ignore=shutil.ignore_patterns(
            "build", "*.egg-info", "__pycache__"))
        return source
    package = source / "federatedscope"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "main.py").write_text("print('flbed test package')\n", encoding="utf-8")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "flbedtest-fs"\nversion = "0.0.0"\n'
        '[tool.setuptools]\npackages = ["federatedscope"]\n', encoding="utf-8")
    return source


class RoleRun:
    def __init__(self, tmp_path, extra_vars):
        self.tmp_path = tmp_path
        (tmp_path / "play.yml").write_text(PLAYBOOK, encoding="utf-8")
        (tmp_path / "hosts.ini").write_text(
            "localhost ansible_connection=local "
            f"ansible_python_interpreter={sys.executable}\n", encoding="utf-8")
        (tmp_path / "vars.json").write_text(json.dumps(extra_vars), encoding="utf-8")

    def __call__(self):
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        started = time.monotonic()
        done = subprocess.run(
            [ansible_playbook(), "-i", str(self.tmp_path / "hosts.ini"),
             str(self.tmp_path / "play.yml"), "-e", "@" + str(self.tmp_path / "vars.json")],
            capture_output=True, text=True, env=env, cwd=REPO, check=False)
        elapsed_s = time.monotonic() - started
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        return done.stdout, elapsed_s


def recap_changed(output):
    match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert match, output[-2000:]
    return int(match.group(1))


def image_ref(output):
    match = re.search(r"FLBED_IMAGE_REF=(flbed/participant:[0-9a-f]{12})", output)
    assert match, output[-2000:]
    return match.group(1)


def docker(*argv):
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=True).stdout


def make_ca_bundle(tmp_path):
    """One real certificate (the last of the controller's bundle) stands for a lab's proxy CA."""
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not host_bundle.exists():
        pytest.skip("needs a CA bundle at /etc/ssl/certs/ca-certificates.crt to borrow from")
    text = host_bundle.read_text(encoding="utf-8")
    start = text.rindex("-----BEGIN CERTIFICATE-----")
    certificate = text[start:text.index("-----END CERTIFICATE-----", start)]
    certificate += "-----END CERTIFICATE-----\n"
    bundle = tmp_path / "lab-proxy-ca.pem"
    bundle.write_text(certificate, encoding="utf-8")
    return bundle


@pytest.fixture
def built_image(tmp_path):
    """Run the role twice; yields (ref, first run, second run); removes the image after."""
    require_docker()
    source = make_fs_source(tmp_path)
    run_role = RoleRun(tmp_path, {
        "fl_image_fs_source": str(source),
        "fl_image_ca_bundle": str(make_ca_bundle(tmp_path)),
        "fl_image_cache_dir": str(WHEELHOUSE_CACHE),
        "fl_image_host_cache_dir": str(tmp_path / "host-cache"),
    })
    first = run_role()
    ref = image_ref(first[0])
    try:
        second = run_role()
        yield ref, first, second
    finally:
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, check=False)


def test_role_builds_a_runnable_participant_image_once(built_image):
    ref, (first_out, first_s), (second_out, second_s) = built_image

    assert recap_changed(first_out) > 0
    config = json.loads(docker("image", "inspect", ref))[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python", "/opt/flbed/participant.py"]
    assert config["Labels"]["flbed.image"] == "participant"
    assert config["Labels"]["flbed.torch"] == "torch==2.13.0+cpu"
    assert "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python" in config["Env"]
    assert config["Labels"]["flbed.ca-bundle"] == "extra"
    for name in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        assert f"{name}=/opt/flbed/ca-bundle.pem" in config["Env"]

    probe = ("import os, torch, federatedscope, google.protobuf;"
             "print(os.getuid(), torch.version.cuda, google.protobuf.__version__,"
             " os.access(os.environ['HOME'], os.W_OK))")
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "python", ref, "-c", probe)
    assert out.split() == ["10001", "None", "3.20.3", "True"]
    docker("run", "--rm", "--network", "none", "--entrypoint", "test", ref,
           "-f", "/opt/flbed/participant.py")

    # The extra CA is trusted on top of Debian's bundle, not instead of it.
    count = ("import os, ssl; c = ssl.create_default_context();"
             "print(len(c.get_ca_certs()), open(os.environ['SSL_CERT_FILE']).read().count("
             "'BEGIN CERTIFICATE'), open('/etc/ssl/certs/ca-certificates.crt').read().count("
             "'BEGIN CERTIFICATE'))")
    loaded, in_bundle, debian = map(int, docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python", ref, "-c", count).split())
    assert in_bundle == debian + 1
    assert loaded >= debian

    assert image_ref(second_out) == ref
    assert recap_changed(second_out) == 0
    assert second_s < first_s / 3, (first_s, second_s)
    print(f"\nfirst run {first_s:.1f} s, unchanged rerun {second_s:.1f} s")


def test_unreachable_git_source_stops_the_role_before_any_slow_step(tmp_path):
    require_docker()
    run_role = RoleRun(tmp_path, {
        "fl_image_fs_source": "git+https://flbedtest.invalid/FederatedScope@" + "0" * 40,
        "fl_image_cache_dir": str(tmp_path / "cache"),
        "fl_image_host_cache_dir": str(tmp_path / "host-cache"),
    })
    with pytest.raises(AssertionError) as failed:
        run_role()
    output = str(failed.value)
    assert "Stop when the image's inputs cannot be prepared" in output
    assert "cannot reach the FederatedScope source https://flbedtest.invalid/FederatedScope" \
        in output
    assert "FLBED_FS_SOURCE=/path/to/FederatedScope" in output
    assert not (tmp_path / "cache").exists()
