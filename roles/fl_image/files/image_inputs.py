#!/usr/bin/env python3
"""Prepare the inputs of the flbed participant image on the controller.

The fl_image role runs this with the controller's Python (``ansible_playbook_python``). Each
subcommand prints one JSON object on stdout and exits 0; an outcome the user can act on (an
unreachable git remote, a CUDA build of torch, a failed pip step) comes back as
``{"error": "..."}`` in one line so that the role can fail with exactly that line. Work that
downloads or builds is cached in a directory keyed by its inputs, finished by a marker file and
serialised by a lock, so that several Docker hosts of one architecture share one download.

Subcommands:
  probe-fs    classify the FederatedScope source (directory, git URL, other requirement),
              check that a git remote answers, and name the source by content or commit
  fs-wheel    build the FederatedScope wheel (``pip wheel --no-deps``) once per identity
  wheelhouse  resolve and download torch and the other packages for the target platform
  pack        pack a wheelhouse's wheels into one tar, named by their digest, for staging
  tag         hash named strings and files (contents) into a short image tag
  prepare     all of the above that a Docker host's image needs, in one run: the source
              probed, its wheel, the wheelhouse packed, and the base and participant tags

Only the standard library is used: the script runs beside any Ansible controller.
"""

import argparse
import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

TAG_LENGTH = 12
KEY_LENGTH = 16
GLIBC_MIN_MINOR = 17  # manylinux2014, the oldest tag that current wheels still ship
DONE_MARKER = ".complete"
LOCK_FILE = ".lock"

# Never part of a source tree's identity, and never copied into a wheel build: VCS data,
# build outputs and caches that pip, setuptools or an editor leave behind.
TREE_EXCLUDES = (".*", "__pycache__", "*.pyc", "build", "dist", "*.egg-info")

# Python distribution names that only a GPU build of torch pulls in.
CUDA_DISTRIBUTIONS = ("nvidia-*", "triton", "pytorch-triton*", "cuda-*")

PIP_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}

# pip judges environment markers such as `platform_machine == "x86_64"` by the machine it
# runs on, even when --platform names another: on an x86_64 controller, resolving for an
# aarch64 host would pull in the CUDA libraries that torch requires on x86_64 only. This
# runs pip with platform.machine() answering the host's machine name (the first argument).
PIP_AS_MACHINE = ("import platform, runpy, sys; machine = sys.argv.pop(1); "
                  "platform.machine = lambda: machine; "
                  "runpy.run_module('pip', run_name='__main__', alter_sys=True)")

FS_SOURCE_HINT = (
    "point flbed at a local checkout instead: 'federatedscope.source: /path/to/FederatedScope'"
    " in the testbed, or FLBED_FS_SOURCE=/path/to/FederatedScope"
)


class InputError(Exception):
    """A problem the user can act on; its text is reported as one line."""


# ---------------------------------------------------------------- digests and tags


def short_hash(text, length):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def is_excluded(name):
    return any(fnmatch.fnmatch(name, pattern) for pattern in TREE_EXCLUDES)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_sha256(path):
    """Digest of a wheel's members, so that a rebuilt wheel with new timestamps is equal."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as wheel:
        for name in sorted(wheel.namelist()):
            digest.update(name.encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(wheel.read(name)).digest())
    return digest.hexdigest()


def tree_files(root):
    """Relative paths of the files under root that belong to its identity, sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not is_excluded(d))
        for name in files:
            if not is_excluded(name):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def tree_sha256(root):
    digest = hashlib.sha256()
    for relpath in tree_files(root):
        digest.update(relpath.encode("utf-8") + b"\0")
        digest.update(file_sha256(os.path.join(root, relpath)).encode("ascii"))
    return digest.hexdigest()


def path_sha256(path):
    if os.path.isdir(path):
        return "tree:" + tree_sha256(path)
    if path.endswith(".whl"):
        return "wheel:" + wheel_sha256(path)
    return "file:" + file_sha256(path)


def image_tag(texts, files):
    """Short tag over named strings and named files; an empty file path stands for 'none'."""
    inputs = dict(texts)
    for name, path in files.items():
        if path and not os.path.exists(path):
            raise InputError(f"the {name} file {path} does not exist on the controller")
        inputs[name] = path_sha256(path) if path else ""
    return short_hash(canonical_json(inputs), TAG_LENGTH), inputs


# ---------------------------------------------------------------- requirements and platforms


def requirement_name(requirement):
    """Normalised distribution name of a pip requirement ('Scikit_Learn>=1' -> 'scikit-learn')."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise InputError(f"cannot read a package name from the requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def pip_platforms(arch, glibc_minor):
    """manylinux platform tags a glibc 2.<glibc_minor> system of this architecture accepts."""
    pip_arch = PIP_ARCHES.get(arch)
    if pip_arch is None:
        raise InputError(
            f"no Python wheels are selected for the architecture {arch!r};"
            f" supported: {', '.join(sorted(set(PIP_ARCHES)))}"
        )
    tags = [f"manylinux_2_{minor}_{pip_arch}" for minor in range(glibc_minor, 16, -1)]
    return tags + [f"manylinux2014_{pip_arch}"]


def cuda_distributions(names):
    return sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in CUDA_DISTRIBUTIONS))


def cuda_versions(pins):
    """Pins like 'torch==2.13.0+cu121' whose local version names a GPU build."""
    return sorted(pin for pin in pins if re.search(r"\+(cu|rocm)\d", pin))


def is_pure_wheel(filename):
    return filename.endswith("-none-any.whl")


# ---------------------------------------------------------------- git sources


def split_git_requirement(requirement):
    """(remote URL, ref or None) of a pip git requirement, or None if it is not one."""
    match = re.search(r"git\+(\S+)", requirement)
    if not match:
        return None
    url = match.group(1).split("#", 1)[0]
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    path_start = rest.find("/")
    host, path = (rest, "") if path_start < 0 else (rest[:path_start], rest[path_start:])
    ref = None
    if "@" in path:
        path, ref = path.rsplit("@", 1)
    remote = f"{scheme}{sep}{host}{path}"
    return remote, (ref or None)


def pin_git_requirement(requirement, commit):
    remote, ref = split_git_requirement(requirement)
    pinned = f"git+{remote}@{commit}"
    fragment = requirement.split("#", 1)[1] if "#" in requirement else ""
    prefix = requirement[: requirement.find("git+")]
    return prefix + pinned + (f"#{fragment}" if fragment else "")


def git_ls_remote(remote, ref, timeout_s):
    """Map of ref name -> commit that the remote advertises; raises InputError if unreachable."""
    command = ["git", "ls-remote", remote] + ([ref] if ref else ["HEAD"])
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env=env, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise InputError(f"git is not installed on the controller; {FS_SOURCE_HINT}") from None
    except subprocess.TimeoutExpired:
        raise InputError(
            f"the FederatedScope source {remote} did not answer within {timeout_s} s;"
            f" {FS_SOURCE_HINT}") from None
    if done.returncode != 0:
        reason = last_line(done.stderr) or f"git exited with {done.returncode}"
        raise InputError(f"cannot reach the FederatedScope source {remote} ({reason}); "
                         f"{FS_SOURCE_HINT}")
    refs = {}
    for line in done.stdout.splitlines():
        commit, _, name = line.partition("\t")
        refs[name] = commit
    return refs


def resolve_git_commit(remote, ref, timeout_s):
    if ref and re.fullmatch(r"[0-9a-f]{40}", ref):
        git_ls_remote(remote, None, timeout_s)  # reachability only: a commit is not advertised
        return ref
    refs = git_ls_remote(remote, ref, timeout_s)
    for name in ([ref, f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}"]
                 if ref else ["HEAD"]):
        if name in refs:
            return refs[name]
    if ref and len(refs) == 1:
        return next(iter(refs.values()))
    raise InputError(f"the FederatedScope source {remote} has no branch or tag {ref!r}; "
                     "pin a commit, tag or branch that exists")


# ---------------------------------------------------------------- shared helpers


def last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


@contextlib.contextmanager
def locked(directory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, LOCK_FILE), "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_pip(python, args, log_path, what, machine=None):
    """Run pip, append its output to log_path, raise InputError with its last line on failure.

    With machine, pip evaluates environment markers as on a machine of that name.
    """
    command = [python] + (["-c", PIP_AS_MACHINE, machine] if machine else ["-m", "pip"]) + args
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False,
                              stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        with open(log_path, encoding="utf-8") as log:
            reason = last_line(log.read())
        raise InputError(f"{what} failed: {reason} (full pip output: {log_path})")


def target_args(platforms, python_version):
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in platforms:
        args += ["--platform", tag]
    return args


def wheel_files(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".whl"))


# ---------------------------------------------------------------- subcommands


def looks_like_path(source):
    return source.startswith(("/", "./", "../", "~")) or source in (".", "..")


def probe_fs(source, git_timeout_s):
    """Classify the FederatedScope source and name it by content (directory) or commit (git)."""
    source = source.strip()
    if not source:
        raise InputError("fl_image_fs_source is empty; give a FederatedScope checkout "
                         "directory or a pip requirement such as git+https://...@<commit>")
    path = os.path.abspath(os.path.expanduser(source))
    if os.path.isdir(path):
        markers = ("setup.py", "pyproject.toml", "setup.cfg")
        if not any(os.path.isfile(os.path.join(path, m)) for m in markers):
            raise InputError(f"the FederatedScope source {path} is a directory without "
                             f"{', '.join(markers)}; point it at the checkout's top directory")
        return {"kind": "directory", "requirement": path, "identity": "tree:" + tree_sha256(path)}
    if looks_like_path(source):
        raise InputError(f"the FederatedScope source {path} does not exist on the controller "
                         "or is not a directory")
    git = split_git_requirement(source)
    if git:
        remote, ref = git
        commit = resolve_git_commit(remote, ref, git_timeout_s)
        return {"kind": "git", "requirement": pin_git_requirement(source, commit),
                "identity": "git:" + commit}
    return {"kind": "requirement", "requirement": source, "identity": "requirement:" + source}


def copy_source_tree(source, destination):
    """Copy what tree_sha256 covers, so the wheel is built from exactly the hashed files and
    the user's checkout gets no build/ or *.egg-info from pip."""
    for relpath in tree_files(source):
        target = os.path.join(destination, relpath)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(source, relpath), target)


def build_fs_wheel(python, requirement, identity, cache_dir):
    """Build the FederatedScope wheel once per identity; returns the wheel's path."""
    out_dir = os.path.join(cache_dir, "fs-" + short_hash(identity, KEY_LENGTH))
    with locked(out_dir):
        changed = not os.path.exists(os.path.join(out_dir, DONE_MARKER))
        if changed:
            for name in wheel_files(out_dir):
                os.remove(os.path.join(out_dir, name))
            with tempfile.TemporaryDirectory(prefix="flbed-fs-") as scratch:
                if os.path.isdir(requirement):
                    copy_source_tree(requirement, scratch)
                    requirement = scratch
                run_pip(python, ["wheel", "--no-deps", "--wheel-dir", out_dir, requirement],
                        os.path.join(out_dir, "pip.log"), "building the FederatedScope wheel")
            check_fs_wheels(out_dir)
            open(os.path.join(out_dir, DONE_MARKER), "w", encoding="utf-8").close()
        wheel = wheel_files(out_dir)[0]
    return {"changed": changed, "wheel": os.path.join(out_dir, wheel)}


def check_fs_wheels(out_dir):
    wheels = wheel_files(out_dir)
    if len(wheels) != 1:
        raise InputError(f"building the FederatedScope wheel gave {len(wheels)} wheels "
                         f"({', '.join(wheels) or 'none'}) in {out_dir}; expected one")
    # The wheel is built on the controller but installed on hosts of any architecture.
    if not is_pure_wheel(wheels[0]):
        raise InputError(f"the FederatedScope wheel {wheels[0]} is not pure Python, so a "
                         "wheel built on the controller may not fit the Docker hosts")


def wheelhouse_key(args):
    spec = {"torch": args.torch, "packages": args.package, "from_source": args.from_source,
            "python": args.python_version, "glibc": args.glibc_minor, "arch": args.arch,
            "extra_index_url": args.extra_index_url}
    return f"{PIP_ARCHES.get(args.arch, args.arch)}-py{args.python_version}-" + short_hash(
        canonical_json(spec), KEY_LENGTH)


def build_source_wheels(args, out_dir, log_path):
    """Wheels for packages published only as sdists (fvcore, iopath), built on the controller.

    pip cannot build for another platform, so this relies on those packages being pure
    Python: a pure wheel built here installs on any architecture. A package that builds to a
    platform wheel is refused rather than shipped to hosts it may not fit.
    """
    wanted = {requirement_name(name) for name in args.from_source}
    chosen = [req for req in [args.torch] + args.package if requirement_name(req) in wanted]
    if not chosen:
        return
    run_pip(args.python, ["wheel", "--no-deps", "--wheel-dir", out_dir] + chosen, log_path,
            "building wheels for " + ", ".join(chosen))
    impure = [name for name in wheel_files(out_dir) if not is_pure_wheel(name)]
    if impure:
        raise InputError(f"{', '.join(impure)} built from source is not pure Python, so it "
                         "cannot serve other architectures; give a wheelhouse "
                         "(fl_image_wheelhouse) with wheels built for the hosts")


def resolve_pins(args, out_dir, log_path, index_args):
    """Resolve the full requirement set for the target without downloading: name==version."""
    report = os.path.join(out_dir, "resolution.json")
    with tempfile.TemporaryDirectory(prefix="flbed-resolve-") as target:
        run_pip(args.python, ["install", "--dry-run", "--ignore-installed", "--quiet",
                              "--report", report, "--target", target, "--find-links", out_dir]
                + index_args + target_args(args.platforms, args.python_version)
                + [args.torch] + args.package, log_path, "resolving the Python packages",
                machine=PIP_ARCHES[args.arch])
    with open(report, encoding="utf-8") as handle:
        resolved = json.load(handle)["install"]
    return sorted(f"{item['metadata']['name']}=={item['metadata']['version']}"
                  for item in resolved)


def refuse_cuda(pins, torch):
    gpu = cuda_distributions(requirement_name(pin) for pin in pins) + cuda_versions(pins)
    if gpu:
        raise InputError(
            f"{torch!r} resolves to a GPU build of torch (it pulls in {', '.join(gpu)}); "
            "participants run on CPUs: ask for a CPU build such as 'torch==2.13.0+cpu', with "
            "fl_image_pip_extra_index_url naming a CPU wheel index if pip cannot find one")


def build_wheelhouse(args):
    args.platforms = pip_platforms(args.arch, args.glibc_minor)
    out_dir = os.path.join(args.cache_dir, wheelhouse_key(args))
    log_path = os.path.join(out_dir, "pip.log")
    index_args = ["--extra-index-url", args.extra_index_url] if args.extra_index_url else []
    with locked(out_dir):
        changed = not os.path.exists(os.path.join(out_dir, DONE_MARKER))
        if changed:
            build_source_wheels(args, out_dir, log_path)
            pins = resolve_pins(args, out_dir, log_path, index_args)
            refuse_cuda(pins, args.torch)
            run_pip(args.python, ["download", "--no-deps", "--dest", out_dir, "--find-links",
                                  out_dir] + index_args
                    + target_args(args.platforms, args.python_version) + pins,
                    log_path, "downloading the Python packages")
            with open(os.path.join(out_dir, "requirements.txt"), "w", encoding="utf-8") as out:
                out.write("\n".join(pins) + "\n")
            open(os.path.join(out_dir, DONE_MARKER), "w", encoding="utf-8").close()
        with open(os.path.join(out_dir, "requirements.txt"), encoding="utf-8") as handle:
            pins = handle.read().split()
    return {"changed": changed, "dir": out_dir, "requirements": pins,
            "wheels": wheel_files(out_dir)}


def wheels_sha256(wheel_dir, wheels):
    digest = hashlib.sha256()
    for name in wheels:
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(file_sha256(os.path.join(wheel_dir, name)).encode("ascii"))
    return digest.hexdigest()


def pack_wheels(wheel_dir, cache_dir):
    """One tar of the wheelhouse's wheels: a host receives one file instead of dozens, and
    the image recipe unpacks it with ADD."""
    if not os.path.isdir(wheel_dir):
        raise InputError(f"the wheelhouse {wheel_dir} does not exist on the controller")
    wheels = wheel_files(wheel_dir)
    if not wheels:
        raise InputError(f"the wheelhouse {wheel_dir} holds no *.whl files")
    digest = wheels_sha256(wheel_dir, wheels)
    packs = os.path.join(cache_dir, "packs")
    tar_path = os.path.join(packs, f"wheels-{digest[:KEY_LENGTH]}.tar")
    with locked(packs):
        changed = not os.path.exists(tar_path)
        if changed:
            with tarfile.open(tar_path + ".part", "w") as tar:
                for name in wheels:
                    tar.add(os.path.join(wheel_dir, name), arcname=name)
            os.replace(tar_path + ".part", tar_path)
    return {"changed": changed, "tar": tar_path, "digest": "wheels:" + digest}


def prepare(args):
    """Everything the fl_image role needs before it looks for the image on a host, in one
    run of this script instead of one per step: each step is cached as when run alone."""
    fs = probe_fs(args.source, args.git_timeout_s)
    fs_wheel = build_fs_wheel(args.python, fs["requirement"], fs["identity"], args.cache_dir)
    if args.wheelhouse:
        wheelhouse = {"changed": False, "dir": args.wheelhouse,
                      "requirements": [args.torch] + args.package}
    else:
        wheelhouse = build_wheelhouse(args)
    pack = pack_wheels(wheelhouse["dir"], args.cache_dir)
    base_tag, _ = image_tag(key_values(args.base_text, "--base-text"),
                            key_values(args.base_file, "--base-file"))
    base_ref = f"{args.base_repository}:{args.suite}-{base_tag}"
    texts = dict(key_values(args.text, "--text"), base=base_ref,
                 fs_identity=fs["identity"], torch=args.torch,
                 requirements=" ".join(wheelhouse["requirements"]),
                 wheelhouse=pack["digest"])
    files = dict(key_values(args.file, "--file"), fs_wheel=fs_wheel["wheel"])
    tag, _ = image_tag(texts, files)
    return {"changed": fs_wheel["changed"] or wheelhouse["changed"] or pack["changed"],
            "fs": fs, "fs_wheel": fs_wheel["wheel"],
            "requirements": wheelhouse["requirements"], "wheels_tar": pack["tar"],
            "base_tag": f"{args.suite}-{base_tag}", "base_ref": base_ref, "tag": tag}


# ---------------------------------------------------------------- command line


def key_values(pairs, what):
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"{what} {pair!r} is not NAME=VALUE")
        parsed[name] = value
    return parsed


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    probe = commands.add_parser("probe-fs")
    probe.add_argument("--source", required=True)
    probe.add_argument("--git-timeout-s", type=float, default=20.0)

    fs_wheel = commands.add_parser("fs-wheel")
    fs_wheel.add_argument("--requirement", required=True)
    fs_wheel.add_argument("--identity", required=True)
    fs_wheel.add_argument("--cache-dir", required=True)

    wheelhouse = commands.add_parser("wheelhouse")
    prepared = commands.add_parser("prepare")
    for sub in (wheelhouse, prepared):
        sub.add_argument("--cache-dir", required=True)
        sub.add_argument("--arch", required=True, help="host architecture, e.g. x86_64")
        sub.add_argument("--python-version", default="3.11")
        sub.add_argument("--glibc-minor", type=int, default=36)
        sub.add_argument("--torch", required=True)
        sub.add_argument("--package", action="append", default=[])
        sub.add_argument("--from-source", action="append", default=[])
        sub.add_argument("--extra-index-url", default="")
    prepared.add_argument("--source", required=True, help="the FederatedScope source")
    prepared.add_argument("--git-timeout-s", type=float, default=20.0)
    prepared.add_argument("--wheelhouse", default="", help="a ready wheelhouse directory")
    prepared.add_argument("--base-repository", required=True)
    prepared.add_argument("--suite", required=True, help="Debian suite of the base image")
    prepared.add_argument("--base-text", action="append", default=[], help="NAME=VALUE")
    prepared.add_argument("--base-file", action="append", default=[], help="NAME=PATH")
    prepared.add_argument("--text", action="append", default=[], help="NAME=VALUE")
    prepared.add_argument("--file", action="append", default=[], help="NAME=PATH")

    pack = commands.add_parser("pack")
    pack.add_argument("--wheel-dir", required=True)
    pack.add_argument("--cache-dir", required=True)

    tag = commands.add_parser("tag")
    tag.add_argument("--text", action="append", default=[], help="NAME=VALUE")
    tag.add_argument("--file", action="append", default=[], help="NAME=PATH (may be empty)")

    for sub in (fs_wheel, wheelhouse, prepared):
        sub.add_argument("--python", default=sys.executable, help="Python whose pip runs")
    return parser.parse_args(argv)


def run(args):
    if args.command == "probe-fs":
        return probe_fs(args.source, args.git_timeout_s)
    if args.command == "fs-wheel":
        return build_fs_wheel(args.python, args.requirement, args.identity, args.cache_dir)
    if args.command == "wheelhouse":
        return build_wheelhouse(args)
    if args.command == "pack":
        return pack_wheels(args.wheel_dir, args.cache_dir)
    if args.command == "prepare":
        return prepare(args)
    tag, inputs = image_tag(key_values(args.text, "--text"), key_values(args.file, "--file"))
    return {"tag": tag, "inputs": inputs}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run(args)
    except InputError as error:
        result = {"error": str(error)}
    result.setdefault("controller_arch", platform.machine())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
