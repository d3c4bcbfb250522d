#!/usr/bin/env bash
# Context of unpackrootfs (cwd = the context folder): the tree is made a folder at a time (not a
# process per file), archived, and removed; only the archive and app/ stay.
set -euo pipefail
if [ "${SMALL:-0}" = 1 ]; then dirs=40; files=800; links=50; big=2; else dirs=400; files=8000; links=500; big=20; fi
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/usr/lib" "$tree/usr/share/big" "$tree/etc" app
chmod 755 "$tree"
# One text blob cut into the folders' files: a `dd | split` per folder, not a process per file.
head -c $((files * 3072)) /dev/urandom | base64 -w 0 > "$tree/all"
per=$((files / dirs))
for ((d = 0; d < dirs; d++)); do
  mkdir "$tree/usr/lib/p$d"
  dd if="$tree/all" bs=4096 skip=$((d * per)) count=$per status=none | split -b 4096 -d -a 3 - "$tree/usr/lib/p$d/f"
done
rm "$tree/all"
for ((l = 0; l < links; l++)); do ln -s "../usr/lib/p$((l % dirs))" "$tree/etc/l$l"; done
head -c $((big * 1024 * 1024)) /dev/urandom | split -b $((1024 * 1024)) -d -a 2 - "$tree/usr/share/big/b"
tar --numeric-owner --owner=0 --group=0 -czf rootfs.tar.gz -C "$tree" .
echo 1 > app/version
