# flbed base image from a registry: Debian bookworm-slim plus the packages a participant needs.
# Used by the fl_image role when FLBED_BASE_FROM can be pulled; base-rootfs.Dockerfile is
# the equivalent for hosts that reach no registry.
ARG FLBED_BASE_FROM=debian:bookworm-slim
FROM ${FLBED_BASE_FROM}
ARG FLBED_BASE_PACKAGES="python3 python3-venv iproute2 iperf3 ca-certificates"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ${FLBED_BASE_PACKAGES} \
 && rm -rf /var/lib/apt/lists/*
CMD ["bash"]
