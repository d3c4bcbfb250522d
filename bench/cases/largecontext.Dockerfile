# A large context: 20,000 files, 1 GB (SMALL=1: 2,000 files, 100 MB), all copied.
#   big/     20 incompressible files of 40 MB (4 MB with SMALL=1)
#   small/   19,980 files of 10 KB in folders of 1,000 (the incremental run edits one)
# bench-touch: small/d01/f01234
ARG BASE=127.0.0.1:5000/busybox:latest
FROM ${BASE}
COPY . /ctx/
RUN du -s /ctx/big /ctx/small
