#!/bin/sh
# Build an arm64 (Raspberry Pi) flbed base image on this x86 machine under qemu-user
# emulation, then a Python environment in it from aarch64 wheels, and time each step.
# Shows that the image recipe works for arm64 where no arm64 machine is at hand.
#   sh bench/arm64_image.sh [WORKDIR]      (root; Debian packages are installed if missing)
# Needs: mmdebstrap, qemu-user-static, binfmt-support, a Docker engine, PyPI for pip.
# Leaves the images flbedtest-arm64-base and flbedtest-arm64-py (remove with docker rmi).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/flbed-arm64-bench}
python=${PYTHON:-$here/.venv/bin/python}
# Wheels the participant image needs that PyPI publishes for aarch64. torch is not among
# them: PyPI's aarch64 torch is a CUDA build (see roles/fl_image/defaults/main.yml).
wheels="numpy grpcio protobuf==3.20.3 pyyaml"
mkdir -p "$work"
stamp() { date +%s.%N; }
took() { printf '%-34s %6.1f s\n' "$1" "$(echo "$(stamp) - $2" | bc)"; }

for pkg in qemu-user-static binfmt-support mmdebstrap bc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="${missing:-} $pkg"
done
if [ -n "${missing:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
# The binfmt handlers must be registered with the kernel (flag F: usable inside containers).
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "arm64: the kernel has no qemu-aarch64 binfmt handler; cannot emulate" >&2; exit 1
fi

t=$(stamp)
rm -rf "$work/base" && mkdir -p "$work/base"
mmdebstrap --quiet --variant=minbase --format=tar --architectures=arm64 \
  --include=python3,python3-venv,iproute2,iperf3,ca-certificates \
  bookworm "$work/base/rootfs.tar"
took "mmdebstrap arm64 root" "$t"

t=$(stamp)
cp "$here/docker/base-rootfs.Dockerfile" "$work/base/Dockerfile"
docker build -q -t flbedtest-arm64-base "$work/base" >/dev/null
took "base image (docker build)" "$t"

t=$(stamp)
rm -rf "$work/py" && mkdir -p "$work/py/wheels"
"$python" -m pip download --quiet --only-binary=:all: --platform manylinux2014_aarch64 \
  --python-version 3.11 --implementation cp -d "$work/py/wheels" $wheels
took "aarch64 wheels (pip download)" "$t"

cat > "$work/py/Dockerfile" <<'DOCKERFILE'
FROM flbedtest-arm64-base
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
CMD ["/opt/venv/bin/python", "-c", \
     "import platform, numpy, grpc, yaml; print(platform.machine(), numpy.__version__)"]
DOCKERFILE
t=$(stamp)
docker build -q -t flbedtest-arm64-py "$work/py" >/dev/null
took "venv + aarch64 wheels (emulated)" "$t"

t=$(stamp)
echo "runs as: $(docker run --rm flbedtest-arm64-py)"
took "start python + imports (emulated)" "$t"
rm -rf "$work"
