"""Time moving a participant image to a lab host with docker save | ssh | docker load.

The alternative to building the image on every host: build once per architecture, then
move it. Run as root on a machine whose engine has the image:
    .venv/bin/python bench/image_transfer.py [flbed/participant:<tag>]   (default: newest)
The host is an emulated lab host (tests/integration/lab_hosts.py), reached over SSH like a
real one; it and its engine are removed afterwards.
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.integration.lab_hosts import Lab, docker  # noqa: E402


def timed(label, argv, **kwargs):
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, **kwargs)
    seconds = time.monotonic() - started
    print(f"{label:44s} {seconds:7.1f} s")
    return seconds


def main(image):
    size_mb = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout) / 1e6
    print(f"image {image}: {size_mb:.0f} MB")
    with tempfile.TemporaryDirectory(prefix="flbedtest-transfer-") as workdir:
        lab = Lab(workdir, ["host1"], prefix=f"flbedtest-transfer-{os.getpid()}")
        try:
            lab.start()
            lab.ssh("host1", "setsid nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &")
            while lab.ssh("host1", "docker info >/dev/null 2>&1").returncode != 0:
                time.sleep(1)
            tar = os.path.join(workdir, "image.tar")
            ssh = ["ssh", "-i", lab.key, "-o", "StrictHostKeyChecking=no",
                   "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                   f"root@{lab.addresses['host1']}"]
            timed("docker save (controller)", ["docker", "save", "-o", tar, image])
            with open(tar, "rb") as handle:
                timed("ssh copy + docker load (host)", ssh + ["docker", "load", "-q"],
                      stdin=handle)
            lab.ssh("host1", f"docker rmi {image}")
            with open(tar, "rb") as handle:
                timed("gzip | ssh | gunzip | docker load", ["sh", "-c", (
                    f"gzip -1 -c | {' '.join(ssh)} 'gunzip -c | docker load -q'")],
                    stdin=handle)
        finally:
            lab.close()


if __name__ == "__main__":
    newest = docker("images", "flbed/participant", "--format",
                    "{{.Repository}}:{{.Tag}}").stdout.split()
    if len(sys.argv) < 2 and not newest:
        sys.exit("no flbed/participant image here; run a testbed first or name one")
    main(sys.argv[1] if len(sys.argv) > 1 else newest[0])
