#!/usr/bin/env bash
# The README's quick start: build testdata/hello into the default local store (cache/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d dist ] || npm run build
# The example's base is the host's static busybox, copied into the context.
cp -f /bin/busybox testdata/hello/busybox
./bin/kiln build -t hello testdata/hello
./bin/kiln images
