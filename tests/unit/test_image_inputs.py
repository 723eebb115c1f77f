"""Unit tests of the fl_image role's controller helper: tags, digests, pip targets, git URLs."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parents[2] / "roles" / "fl_image" / "files" / "image_inputs.py"


def load_helper():
    spec = importlib.util.spec_from_file_location("fl_image_inputs", HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helper = load_helper()


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_wheel(path, members, date_time=(2020, 1, 1, 0, 0, 0)):
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(zipfile.ZipInfo(name, date_time=date_time), data)
    return path


def run_cli(*argv):
    done = subprocess.run([sys.executable, str(HELPER), *argv], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


# ---------------------------------------------------------------- tags


def test_tag_is_short_hex_and_stable(tmp_path):
    recipe = write(tmp_path / "Dockerfile", "FROM scratch\n")
    first, _ = helper.image_tag({"torch": "torch==2.13.0+cpu"}, {"dockerfile": str(recipe)})
    again, _ = helper.image_tag({"torch": "torch==2.13.0+cpu"}, {"dockerfile": str(recipe)})
    assert first == again
    assert len(first) == helper.TAG_LENGTH
    assert int(first, 16) >= 0


def test_tag_changes_with_any_text_input(tmp_path):
    base = {"torch": "torch==2.13.0+cpu", "requirements": "numpy==2.4.6"}
    tag, _ = helper.image_tag(base, {})
    for name, value in [("torch", "torch==2.12.0+cpu"), ("requirements", "numpy==2.4.5"),
                        ("fs_source", "/elsewhere")]:
        changed, _ = helper.image_tag(dict(base, **{name: value}), {})
        assert changed != tag, name


def test_tag_follows_file_contents_not_paths_or_mtimes(tmp_path):
    one = write(tmp_path / "a" / "participant.py", "print('v1')\n")
    two = write(tmp_path / "b" / "participant.py", "print('v1')\n")
    os.utime(two, (1, 1))
    assert helper.image_tag({}, {"entry": str(one)})[0] == \
        helper.image_tag({}, {"entry": str(two)})[0]
    write(two, "print('v2')\n")
    assert helper.image_tag({}, {"entry": str(one)})[0] != \
        helper.image_tag({}, {"entry": str(two)})[0]


def test_tag_empty_file_means_none_and_differs_from_a_bundle(tmp_path):
    bundle = write(tmp_path / "ca.pem", "-----BEGIN CERTIFICATE-----\n")
    without, inputs = helper.image_tag({}, {"ca_bundle": ""})
    assert inputs == {"ca_bundle": ""}
    assert helper.image_tag({}, {"ca_bundle": str(bundle)})[0] != without


def test_tag_refuses_a_missing_file(tmp_path):
    with pytest.raises(helper.InputError, match="ca_bundle file .*missing.pem does not exist"):
        helper.image_tag({}, {"ca_bundle": str(tmp_path / "missing.pem")})


def test_tag_command_line_prints_json(tmp_path):
    recipe = write(tmp_path / "Dockerfile", "FROM scratch\n")
    result = run_cli("tag", "--text=torch=torch==2.13.0+cpu", f"--file=dockerfile={recipe}")
    assert result["tag"] == helper.image_tag({"torch": "torch==2.13.0+cpu"},
                                             {"dockerfile": str(recipe)})[0]
    assert result["inputs"]["dockerfile"].startswith("file:")


def test_tag_command_line_reports_bad_pairs_as_one_error_line():
    result = run_cli("tag", "--text=novalue")
    assert result["error"] == "--text 'novalue' is not NAME=VALUE"


# ---------------------------------------------------------------- digests


def test_tree_digest_ignores_build_outputs_and_vcs(tmp_path):
    write(tmp_path / "setup.py", "setup()\n")
    write(tmp_path / "pkg" / "main.py", "x = 1\n")
    before = helper.tree_sha256(tmp_path)
    for noise in [".git/HEAD", "build/lib/x.py", "pkg.egg-info/PKG-INFO",
                  "pkg/__pycache__/main.cpython-311.pyc", "dist/pkg.whl"]:
        write(tmp_path / noise, "noise")
    assert helper.tree_sha256(tmp_path) == before
    write(tmp_path / "pkg" / "main.py", "x = 2\n")
    assert helper.tree_sha256(tmp_path) != before


def test_tree_digest_sees_renames(tmp_path):
    write(tmp_path / "a.py", "same\n")
    before = helper.tree_sha256(tmp_path)
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    assert helper.tree_sha256(tmp_path) != before


def test_wheel_digest_ignores_zip_timestamps(tmp_path):
    members = {"fs/__init__.py": b"", "fs/main.py": b"print(1)\n"}
    old = make_wheel(tmp_path / "old.whl", members, (2020, 1, 1, 0, 0, 0))
    new = make_wheel(tmp_path / "new.whl", members, (2024, 6, 1, 12, 0, 0))
    assert old.read_bytes() != new.read_bytes()
    assert helper.wheel_sha256(old) == helper.wheel_sha256(new)
    other = make_wheel(tmp_path / "other.whl", dict(members, **{"fs/main.py": b"print(2)\n"}))
    assert helper.wheel_sha256(other) != helper.wheel_sha256(old)


def test_pack_makes_one_tar_named_by_content_and_reuses_it(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels / "a-1-py3-none-any.whl", {"a.py": b"a"})
    make_wheel(wheels / "b-1-py3-none-any.whl", {"b.py": b"b"})
    write(wheels / "pip.log", "not a wheel")
    first = helper.pack_wheels(str(wheels), str(tmp_path / "cache"))
    assert first["changed"] is True
    with tarfile.open(first["tar"]) as tar:
        assert sorted(tar.getnames()) == ["a-1-py3-none-any.whl", "b-1-py3-none-any.whl"]
    again = helper.pack_wheels(str(wheels), str(tmp_path / "cache"))
    assert again == dict(first, changed=False)
    make_wheel(wheels / "c-1-py3-none-any.whl", {"c.py": b"c"})
    third = helper.pack_wheels(str(wheels), str(tmp_path / "cache"))
    assert third["digest"] != first["digest"] and third["tar"] != first["tar"]


def test_pack_refuses_an_empty_wheelhouse(tmp_path):
    with pytest.raises(helper.InputError, match="holds no"):
        helper.pack_wheels(str(tmp_path), str(tmp_path / "cache"))


# ---------------------------------------------------------------- pip targets


@pytest.mark.parametrize("requirement, name", [
    ("numpy", "numpy"), ("Scikit_Learn>=1.0", "scikit-learn"),
    ("protobuf==3.20.3", "protobuf"), ("torch==2.13.0+cpu", "torch"),
    ("tensorboardX", "tensorboardx"), ("zope.interface ; python_version>'3'", "zope-interface"),
])
def test_requirement_name(requirement, name):
    assert helper.requirement_name(requirement) == name


def test_requirement_name_refuses_nonsense():
    with pytest.raises(helper.InputError, match="'==1'"):
        helper.requirement_name("==1")


def test_pip_platforms_cover_glibc_range_for_each_arch():
    tags = helper.pip_platforms("x86_64", 36)
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_28_x86_64" in tags and "manylinux_2_17_x86_64" in tags
    assert tags[-1] == "manylinux2014_x86_64"
    assert "manylinux_2_37_x86_64" not in tags
    assert helper.pip_platforms("aarch64", 36)[0] == "manylinux_2_36_aarch64"


def test_pip_platforms_refuse_unknown_arch():
    with pytest.raises(helper.InputError, match="'armv7l'.*supported: aarch64"):
        helper.pip_platforms("armv7l", 36)


def test_cuda_builds_are_recognised():
    pins = ["torch==2.5.1", "nvidia-cublas-cu12==12.4.5.8", "triton==3.1.0", "numpy==2.4.6"]
    with pytest.raises(helper.InputError, match="nvidia-cublas-cu12, triton"):
        helper.refuse_cuda(pins, "torch==2.5.1")
    with pytest.raises(helper.InputError, match=r"torch==2.4.0\+cu121"):
        helper.refuse_cuda(["torch==2.4.0+cu121"], "torch==2.4.0+cu121")
    helper.refuse_cuda(["torch==2.13.0+cpu", "numpy==2.4.6", "sympy==1.14.0"], "torch")


def test_wheelhouse_key_depends_on_inputs():
    args = helper.parse_args(["wheelhouse", "--cache-dir=/c", "--arch=x86_64",
                              "--torch=torch==2.13.0+cpu", "--package=numpy"])
    key = helper.wheelhouse_key(args)
    assert key.startswith("x86_64-py3.11-")
    args.package = ["numpy", "scipy"]
    assert helper.wheelhouse_key(args) != key
    args.arch = "aarch64"
    assert helper.wheelhouse_key(args).startswith("aarch64-py3.11-")


def make_dist(directory, name, requires=()):
    """A pure wheel of an empty distribution whose metadata requires `requires`."""
    info = f"{name}-1.0.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"]
                       + [f"Requires-Dist: {r}\n" for r in requires])
    return make_wheel(directory / f"{name}-1.0-py3-none-any.whl", {
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/RECORD": "",
    })


@pytest.mark.parametrize("arch, pulled", [("aarch64", ["armlib"]), ("x86_64", ["x86lib"])])
def test_resolution_judges_markers_for_the_hosts_machine(tmp_path, arch, pulled):
    # torch on PyPI requires its CUDA libraries with `platform_machine == "x86_64"`: which of
    # them a host gets must follow the host's machine, not the controller's.
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_dist(wheels, "tool", ['armlib; platform_machine == "aarch64"',
                               'x86lib; platform_machine == "x86_64"'])
    make_dist(wheels, "armlib")
    make_dist(wheels, "x86lib")
    args = helper.parse_args(["wheelhouse", f"--cache-dir={tmp_path}", f"--arch={arch}",
                              "--torch=tool"])
    args.platforms = helper.pip_platforms(arch, 36)

    pins = helper.resolve_pins(args, str(wheels), str(tmp_path / "pip.log"), ["--no-index"])

    assert pins == sorted(["tool==1.0"] + [f"{name}==1.0" for name in pulled])


# ---------------------------------------------------------------- git sources

COMMIT = "480b67de851df2fa02b7cc2189f1803d947998d7"


@pytest.mark.parametrize("requirement, remote, ref", [
    (f"git+https://github.com/alibaba/FederatedScope@{COMMIT}",
     "https://github.com/alibaba/FederatedScope", COMMIT),
    ("git+https://github.com/alibaba/FederatedScope.git@v0.3.0#egg=federatedscope",
     "https://github.com/alibaba/FederatedScope.git", "v0.3.0"),
    ("federatedscope @ git+ssh://git@example.org/lab/fs.git",
     "ssh://git@example.org/lab/fs.git", None),
    ("git+ssh://git@example.org/lab/fs.git@main", "ssh://git@example.org/lab/fs.git", "main"),
])
def test_split_git_requirement(requirement, remote, ref):
    assert helper.split_git_requirement(requirement) == (remote, ref)


def test_plain_requirement_is_not_git():
    assert helper.split_git_requirement("federatedscope==0.3.0") is None


def test_pin_git_requirement_keeps_prefix_and_fragment():
    pinned = helper.pin_git_requirement(
        "federatedscope @ git+https://example.org/fs.git@main#egg=federatedscope", COMMIT)
    assert pinned == f"federatedscope @ git+https://example.org/fs.git@{COMMIT}" \
        "#egg=federatedscope"


@pytest.fixture
def git_repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "fsrepo"
    write(repo / "setup.py", "setup()\n")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    for command in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "one"],
                    ["tag", "v1"]):
        subprocess.run(["git", "-C", str(repo), *command], check=True, env=env)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    return repo, head


def test_probe_resolves_branch_and_tag_to_the_commit(git_repo):
    repo, head = git_repo
    for ref in ("main", "v1", head):
        found = helper.probe_fs(f"git+file://{repo}@{ref}", 10)
        assert found["kind"] == "git"
        assert found["identity"] == f"git:{head}"
        assert found["requirement"] == f"git+file://{repo}@{head}"


def test_probe_names_a_missing_ref(git_repo):
    repo, _ = git_repo
    with pytest.raises(helper.InputError, match="has no branch or tag 'nope'"):
        helper.probe_fs(f"git+file://{repo}@nope", 10)


def test_unreachable_git_source_fails_fast_in_one_actionable_line():
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    started = time.monotonic()
    result = run_cli("probe-fs", f"--source=git+https://flbedtest.invalid/fs.git@{COMMIT}",
                     "--git-timeout-s=15")
    assert time.monotonic() - started < 16
    message = result["error"]
    assert "\n" not in message
    assert "https://flbedtest.invalid/fs.git" in message
    assert "federatedscope.source: /path/to/FederatedScope" in message
    assert "FLBED_FS_SOURCE=" in message


# ---------------------------------------------------------------- directory sources


def test_probe_directory_is_named_by_content(tmp_path):
    source = tmp_path / "fs"
    write(source / "pyproject.toml", "[project]\nname='x'\n")
    found = helper.probe_fs(str(source), 1)
    assert found == {"kind": "directory", "requirement": str(source),
                     "identity": "tree:" + helper.tree_sha256(source)}


def test_probe_refuses_missing_or_unpackaged_directories(tmp_path):
    with pytest.raises(helper.InputError, match="does not exist on the controller"):
        helper.probe_fs(str(tmp_path / "absent"), 1)
    with pytest.raises(helper.InputError, match="without setup.py"):
        helper.probe_fs(str(tmp_path), 1)
    with pytest.raises(helper.InputError, match="is empty"):
        helper.probe_fs("  ", 1)


def test_probe_passes_other_requirements_through():
    assert helper.probe_fs("federatedscope==0.3.0", 1) == {
        "kind": "requirement", "requirement": "federatedscope==0.3.0",
        "identity": "requirement:federatedscope==0.3.0"}


def test_source_copy_leaves_out_what_the_digest_leaves_out(tmp_path):
    source, copy = tmp_path / "src", tmp_path / "copy"
    write(source / "setup.py", "setup()\n")
    write(source / "pkg" / "a.py", "a\n")
    write(source / ".git" / "HEAD", "ref\n")
    write(source / "build" / "lib" / "a.py", "stale\n")
    helper.copy_source_tree(str(source), str(copy))
    assert helper.tree_files(copy) == ["pkg/a.py", "setup.py"]
    assert not (copy / ".git").exists() and not (copy / "build").exists()
    assert helper.tree_sha256(copy) == helper.tree_sha256(source)


def test_fs_wheel_refuses_platform_wheels(tmp_path):
    make_wheel(tmp_path / "fs-1-cp311-cp311-linux_x86_64.whl", {"a": b""})
    with pytest.raises(helper.InputError, match="not pure Python"):
        helper.check_fs_wheels(str(tmp_path))


# ---------------------------------------------------------------- prepare


def prepare_argv(tmp_path, source, wheels, recipe):
    return ["prepare", f"--cache-dir={tmp_path / 'cache'}", "--arch=x86_64",
            "--torch=torch==2.13.0+cpu", "--package=numpy", f"--source={source}",
            f"--wheelhouse={wheels}", "--base-repository=flbed/base", "--suite=bookworm",
            "--base-text=from=debian:bookworm-slim", f"--base-file=rootfs_recipe={recipe}",
            "--text=fs_source=/src", f"--file=dockerfile={recipe}", "--file=ca_bundle="]


def test_prepare_gives_the_tags_its_steps_give_alone(tmp_path, monkeypatch):
    source = write(tmp_path / "fs" / "setup.py", "setup()\n").parent
    fs_wheel = make_wheel(tmp_path / "federatedscope-0.3.0-py3-none-any.whl", {"a.py": b"a"})
    monkeypatch.setattr(helper, "build_fs_wheel", lambda *args: {"changed": True,
                                                                  "wheel": str(fs_wheel)})
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels / "numpy-2-py3-none-any.whl", {"numpy.py": b""})
    recipe = write(tmp_path / "Dockerfile", "FROM base\n")

    prepared = helper.run(helper.parse_args(prepare_argv(tmp_path, source, wheels, recipe)))

    base_tag, _ = helper.image_tag({"from": "debian:bookworm-slim"},
                                   {"rootfs_recipe": str(recipe)})
    assert prepared["base_ref"] == f"flbed/base:bookworm-{base_tag}"
    assert prepared["base_tag"] == f"bookworm-{base_tag}"
    pack = helper.pack_wheels(str(wheels), str(tmp_path / "cache"))
    assert prepared["wheels_tar"] == pack["tar"]
    assert prepared["requirements"] == ["torch==2.13.0+cpu", "numpy"]
    tag, _ = helper.image_tag(
        {"base": prepared["base_ref"], "fs_source": "/src",
         "fs_identity": helper.probe_fs(str(source), 1)["identity"],
         "torch": "torch==2.13.0+cpu", "requirements": "torch==2.13.0+cpu numpy",
         "wheelhouse": pack["digest"]},
        {"fs_wheel": str(fs_wheel), "dockerfile": str(recipe), "ca_bundle": ""})
    assert prepared["tag"] == tag and prepared["changed"] is True


def test_prepare_reports_a_missing_source_in_one_line(tmp_path):
    recipe = write(tmp_path / "Dockerfile", "FROM base\n")
    answer = run_cli(*prepare_argv(tmp_path, tmp_path / "nowhere", tmp_path, recipe))
    assert "does not exist on the controller" in answer["error"]
    assert "\n" not in answer["error"]
