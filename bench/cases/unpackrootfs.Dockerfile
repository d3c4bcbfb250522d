# ADD of a root filesystem tarball, as a FROM-scratch distro image or a vendored SDK starts:
# 9,000 entries like a minimal Debian's (SMALL=1: 1,000), gzip-compressed; the cold build is
# mostly the archive's unpacking.
#   rootfs.tar.gz  400 folders, 8,000 text files of 4 KB, 500 symlinks, 20 files of 1 MB
#   app/           what the incremental run edits (the archive does not change)
# bench-touch: app/version
ARG BASE=127.0.0.1:5000/busybox:latest
FROM ${BASE}
ADD rootfs.tar.gz /rootfs/
COPY app/ /app/
RUN ls /rootfs/usr/lib | wc -l
