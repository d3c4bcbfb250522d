#!/usr/bin/env bash
# Context of largecontext (cwd = the context folder). One `split` per kind of file, not a process
# per file: 20,000 files in a few seconds.
set -euo pipefail
if [ "${SMALL:-0}" = 1 ]; then big_mb=4; dirs=2; else big_mb=40; dirs=20; fi
mkdir -p big small
head -c $((20 * big_mb * 1024 * 1024)) /dev/urandom | split -b $((big_mb * 1024 * 1024)) -d -a 2 - big/blob
# 1,000 files per folder, minus the 20 big ones in the first folder's count: 20,000 in all.
n=$((dirs * 1000 - 20))
head -c $((n * 10240)) /dev/urandom | split -b 10240 -d -a 5 - small/f
for ((d = 0; d < dirs; d++)); do
  dd=$(printf %02d $d); mkdir -p "small/d$dd"
  find small -maxdepth 1 -type f -name "f${dd}???" -exec mv -t "small/d$dd" {} +
done
