#!/bin/sh
# Build the arm64 (Raspberry Pi) participant image on this x86 machine with the fl_image role
# itself, under qemu-user emulation, then train FederatedScope in it, and time each step.
# Shows that the image recipe works for arm64 where no arm64 machine is at hand.
#   FLBED_FS_SOURCE=/path/to/FederatedScope sh bench/arm64_image.sh
# Needs: root, a Docker engine, the project's .venv (make setup), PyPI for the controller's
# pip. Installs qemu-user-static and binfmt-support if missing. Leaves the image (and its
# base) tagged flbed/participant:<tag> and flbed/base:bookworm-<tag> for docker rmi.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
: "${FLBED_FS_SOURCE:?name a FederatedScope checkout in FLBED_FS_SOURCE}"
stamp() { date +%s.%N; }
took() { printf '%-40s %7.1f s\n' "$1" "$(echo "$(stamp) - $2" | bc)"; }

for pkg in qemu-user-static binfmt-support mmdebstrap bc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="${missing:-} $pkg"
done
if [ -n "${missing:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
# The binfmt handler must be registered with the kernel (flag F: usable inside containers).
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "arm64: the kernel has no qemu-aarch64 binfmt handler; cannot emulate" >&2; exit 1
fi

cd "$here"
log=$(mktemp /tmp/flbed-arm64-XXXXXX.log)
t=$(stamp)
if ! .venv/bin/ansible-playbook -i inventories/local bench/arm64_image.yml \
     -e ansible_architecture=aarch64 -e "fs_source=$FLBED_FS_SOURCE" >"$log" 2>&1; then
  tail -n 30 "$log" >&2; echo "arm64: the fl_image role failed; its output: $log" >&2; exit 1
fi
took "fl_image role for aarch64 (emulated)" "$t"
ref=$(sed -n 's/.*"msg": "image \(flbed\/participant:[0-9a-f]*\)".*/\1/p' "$log" | tail -n 1)
size=$(docker image inspect -f '{{.Size}}' "$ref" | awk '{printf "%.2f GB", $1 / 1e9}')
echo "image: $ref ($size)"
grep -A1 'PLAY RECAP' "$log" | tail -n 1 | tr -s ' '

# The image's entry point is flbed's participant.py; these runs call its Python directly.
# FederatedScope logs its host's address, so the network-less container resolves its name.
run() {
  docker run --rm --network none --hostname arm64 --add-host arm64:127.0.0.1 -w /tmp \
    -e PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python \
    --entrypoint /opt/flbed/venv/bin/python "$ref" "$@"
}
t=$(stamp)
run -c "import platform, torch, federatedscope; print('runs as', platform.machine(),
        'with torch', torch.__version__, '(CUDA:', torch.cuda.is_available(), end=')\n')"
took "start python, import torch + FS (emulated)" "$t"

t=$(stamp)
run -m federatedscope.main use_gpu False federate.mode standalone federate.client_num 2 \
  federate.total_round_num 2 data.type toy model.type lr outdir /tmp/out 2>&1 \
  | grep -o "'Round': 'Final'.*" | grep -o "'test_loss': [0-9.]*" | head -n 1 \
  | sed 's/^/final /'
took "FederatedScope: 2 rounds, 2 clients (emulated)" "$t"
rm -f "$log"
