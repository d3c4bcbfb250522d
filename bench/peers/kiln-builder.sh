# kiln as a builder for ../shared/peers/run.sh and for bench/peers/compare.sh:
#   EXTRA_BUILDERS=bench/peers/kiln-builder.sh
# Sourced by bash after the built-in builders, so $W, $BASE, $LOGDIR and the helpers of
# run.sh are in scope. Interface: the header of run.sh.
#
# kiln keeps its own store under $W/store/kiln. The base image is pulled once into a template
# store (kiln pulls from loopback registries over plain HTTP); a clean replaces the working
# store by a copy of that template, which is what the peers' clean leaves them: only the base.

KILN_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KILN_BIN=${KILN_BIN:-$KILN_REPO/bin/kiln}
KILN_DIR=$W/store/kiln
KILN_ROOT_DIR=$KILN_DIR/root
KILN_BASE_ROOT=$KILN_DIR/base-root

case " $BUILDERS " in *" kiln "*) ;; *) BUILDERS="$BUILDERS kiln" ;; esac

# The node process's max RSS (GNU time %M: the largest process of the tree, in KiB) of the
# last kiln command, for compare.sh's memory column.
kiln_run() {
  local rc
  /usr/bin/time -f '%M' -o "$KILN_DIR/last-maxrss" "$KILN_BIN" "$@"; rc=$?
  return $rc
}
kiln_maxrss_kb() { tail -n1 "$KILN_DIR/last-maxrss" 2>/dev/null; }

kiln_version() {
  local rev; rev=$(cat "$KILN_REPO/COMMIT" 2>/dev/null || git -C "$KILN_REPO" rev-parse --short HEAD 2>/dev/null)
  echo "$("$KILN_BIN" version 2>&1 | head -n1) (commit ${rev:-?})"
}

KILN_HAS_EXPORT=0
kiln_setup() {
  mkdir -p "$KILN_DIR"
  "$KILN_BIN" export --help > /dev/null 2>&1 && KILN_HAS_EXPORT=1
  rm -rf --one-file-system "$KILN_BASE_ROOT" "$KILN_ROOT_DIR"
  "$KILN_BIN" pull --root "$KILN_BASE_ROOT" "$BASE" || return 1
  # A pull stores the base's blobs; its layers are unpacked on first use. The peers' clean
  # keeps the base unpacked, so one throwaway build unpacks it in the template too.
  local d=$KILN_DIR/unpack-base
  mkdir -p "$d" && printf 'FROM %s\nRUN true\n' "$BASE" > "$d/Dockerfile"
  "$KILN_BIN" build --root "$KILN_BASE_ROOT" --progress plain -t kiln-bench-unpack-base "$d"
}

kiln_clean() {
  rm -rf --one-file-system "$KILN_ROOT_DIR" || return 1
  cp -a "$KILN_BASE_ROOT" "$KILN_ROOT_DIR"
}

kiln_build() {
  local nc=(); [ "$3" = 1 ] && nc=(--no-cache)
  # The context each tag was last built from: kiln exports as part of a (cached) build.
  printf '%s\n' "$1" > "$KILN_DIR/ctx-${2//[\/:]/_}"
  kiln_run build --root "$KILN_ROOT_DIR" --progress plain "${nc[@]}" -t "$2" .
}

# `kiln export REF -o SPEC` writes a stored image out, as `docker save` does; a kiln without
# that command exports through a build whose every step is cached.
kiln_export_as() {  # kiln_export_as TAG OUT OUTPUT-SPEC
  if [ "$KILN_HAS_EXPORT" = 1 ]; then
    kiln_run export --root "$KILN_ROOT_DIR" -o "$3" "$1"
  else
    local ctx; ctx=$(cat "$KILN_DIR/ctx-${1//[\/:]/_}") || return 1
    (cd "$ctx" && kiln_run build --root "$KILN_ROOT_DIR" --progress plain -t "$1" -o "$3" .)
  fi
}
kiln_export()      { kiln_export_as "$1" "$2" "type=docker,dest=$2,compression=uncompressed"; }
kiln_export_oci()  { kiln_export_as "$1" "$2" "type=oci,dest=$2,compression=gzip"; }
kiln_export_zstd() { kiln_export_as "$1" "$2" "type=oci,dest=$2,compression=zstd"; }

kiln_teardown() { true; }
