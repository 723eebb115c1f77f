# flbed base image without a registry: a Debian root file system made on the Docker host by
#   mmdebstrap --variant=minbase --include=<packages> bookworm rootfs.tar
# (the fl_image role does this) becomes an image. ADD unpacks the local tar.
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["bash"]
