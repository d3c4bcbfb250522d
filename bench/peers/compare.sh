#!/usr/bin/env bash
# kiln against the peer builders, runs alternating between builders.
#
# It reuses everything of ../shared/peers/run.sh (package setup, registry, dockerd, base image,
# the peers' build/clean/export functions, context generation), so every builder is driven
# exactly as run.sh drives it; what differs is the order. run.sh measures one builder after the
# other; here every sample of a phase goes round all builders (in a rotated order per run), so
# noise from other work on the machine spreads over all builders alike. It also takes cases
# from bench/cases/ besides run.sh's own, and exports zstd OCI archives.
#
# Usage: compare.sh RUN_SH bench|kiln-setup|teardown
#   bench       measure; needs the registry (and dockerd for docker_* builders) of `run.sh setup`
#   kiln-setup  only what kiln needs: the registry and the base image (when not already up)
#   teardown    stop what `run.sh setup` or kiln-setup started
# Knobs: RUNS=3 BUILDERS="docker_buildkit buildah_oci podman kiln" CASES="..."
#   KILN_CASES=bench/cases  SMALL=1 (smaller generated contexts)  PEERBENCH_DIR=/tmp/peerbench
#   EXTRA_BUILDERS=bench/peers/kiln-builder.sh (compare.sh sources it when not set)
#   RESULTS_NAME=kiln (results folder under $W/results)
# Output: $W/results/$RESULTS_NAME/samples.tsv (builder case metric run value status), versions.txt.

set -uo pipefail
export LC_ALL=C

RUN_SH=${1:?usage: compare.sh RUN_SH bench|kiln-setup|teardown}
CMD=${2:?usage: compare.sh RUN_SH bench|kiln-setup|teardown}
SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KILN_CASES=${KILN_CASES:-$SELF_DIR/../cases}
export EXTRA_BUILDERS=${EXTRA_BUILDERS:-$SELF_DIR/kiln-builder.sh}
: "${BUILDERS:=docker_buildkit buildah_oci podman kiln}"
export BUILDERS

# run.sh ends with its command dispatch; everything above it is definitions and settings.
defs=$(sed '/^cmd=\${1:-all}$/,$d' "$RUN_SH")
[ "$(printf '%s\n' "$defs" | wc -l)" -lt "$(wc -l < "$RUN_SH")" ] \
  || { echo "compare.sh: no command dispatch found in $RUN_SH" >&2; exit 1; }
wanted_builders=$BUILDERS
set --
eval "$defs"
BUILDERS=$wanted_builders   # kiln-builder.sh appends kiln for run.sh's users; here BUILDERS rules
. "$SELF_DIR/peer-extras.sh"

PEERS_DIR=$(cd "$(dirname "$RUN_SH")" && pwd)
HERE=$W/kiln-cases           # gen_context/touch_file read $HERE/cases/
RESULTS=$W/results/${RESULTS_NAME:-kiln}   # RESULTS_NAME: keep an earlier run's samples

merge_cases() {
  rm -rf "$HERE"; mkdir -p "$HERE/cases"
  cp "$PEERS_DIR"/cases/*.Dockerfile "$HERE/cases/"
  cp "$KILN_CASES"/*.Dockerfile "$HERE/cases/" 2> /dev/null
  local f; for f in "$KILN_CASES"/*.context.sh; do [ -f "$f" ] && install -m 755 "$f" "$HERE/cases/"; done
  true
}

registry_up() { pid_is_ours "$(cat "$W/pids/registry.pid" 2>/dev/null)"; }

# The base image without buildah: kiln builds it from run.sh's busybox rootfs, skopeo pushes it.
kiln_base_image() {
  local d=$W/tmp/kiln-base
  rm -rf "$d"; mkdir -p "$d"
  printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["/bin/sh"]\n' > "$d/Dockerfile"
  cp -a "$W/rootfs" "$d/rootfs"
  "$KILN_BIN" build --root "$d/store" --progress quiet -o "type=oci,dest=$d/base.tar" "$d" \
    && skopeo copy --quiet --dest-tls-verify=false "oci-archive:$d/base.tar" "docker://$BASE" \
    || die "could not push a kiln-built base image to $BASE"
  rm -rf --one-file-system "$d"
}

do_kiln_setup() {
  if registry_up && curl -sf "http://$REG/v2/busybox/manifests/latest" -o /dev/null; then
    say "registry and base image already up"; return 0
  fi
  mkdir -p "$W"/{pids,tmp,containers,logs,results,ctx,store} "$DOCKER_CONFIG"
  [ -f "$DOCKER_CONFIG/config.json" ] || echo '{}' > "$DOCKER_CONFIG/config.json"
  write_configs
  registry_up || start_registry
  rm -rf "$W/rootfs"; make_rootfs
  if command -v buildah > /dev/null; then make_base_image; else kiln_base_image; fi
}

# -------------------------------------------------------------------- measuring
declare -A FAILED=()

rotated() {  # rotated N: BUILDERS shifted left by N
  local -a b=($BUILDERS); local n=${#b[@]} i
  for ((i = 0; i < n; i++)); do printf '%s ' "${b[(i + $1) % n]}"; done
}

sample() {  # sample BUILDER CASE PHASE RUN: one timed measurement, recorded
  local b=$1 c=$2 p=$3 i=$4 ctx=$W/ctx/$2 tag log t out size nocache=0 f
  [ -n "${FAILED[$b/$c]:-}" ] && return 0
  tag="localhost/pb-${b//_/-}-$c:latest"
  log=$LOGDIR/cmp-$b-$c.log
  build_in_ctx() { cd "$ctx" && "${b}_build" "$ctx" "$tag" "$1"; }
  echo "===== $p $i $(date +%T)" >> "$log"
  case $p in
    cold) ( "${b}_clean" "$tag" ) >> "$log" 2>&1; nocache=1 ;;
    incr) f=$(touch_file "$c"); echo "changed $b $i $EPOCHREALTIME" > "$ctx/$f" ;;
  esac
  case $p in
    cold|cached|incr|warmup)
      if t=$(timed "$log" build_in_ctx $nocache); then
        [ "$p" = warmup ] || record "$b" "$c" "$p" "$i" "$t" ok
        # Other work on the machine, for the noise note under the table.
        record "$b" "$c" load1 "$i" "$(cut -d' ' -f1 /proc/loadavg)" ok
        if has_fn "${b}_maxrss_kb"; then
          record "$b" "$c" "${p}_rss_MB" "$i" "$(awk -v k="$("${b}_maxrss_kb")" 'BEGIN { printf "%.1f", k / 1024 }')" ok
        fi
      else
        record "$b" "$c" "$p" "$i" NA FAIL; FAILED[$b/$c]=$p
        say "  $b/$c: $p run $i FAILED (log: $log)"; tail -n 8 "$log" | sed 's/^/      | /' >&2
      fi ;;
    export|export_oci|export_zstd)
      has_fn "${b}_$p" || return 0
      out=$W/tmp/export-$b-$c.tar; rm -f "$out"
      if t=$(timed "$log" "${b}_$p" "$tag" "$out"); then
        size=$(stat -c %s "$out" 2>/dev/null || echo 0)
        record "$b" "$c" "$p" "$i" "$t" ok
        record "$b" "$c" "${p}_MB" "$i" "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }')" ok
      else
        record "$b" "$c" "$p" "$i" NA FAIL
        say "  $b/$c: $p run $i FAILED (log: $log)"; tail -n 8 "$log" | sed 's/^/      | /' >&2
      fi
      rm -f "$out" ;;
  esac
}

phase_all() {  # phase_all CASE PHASE: RUNS rounds over every builder, order rotated each round
  local c=$1 p=$2 i b
  for ((i = 1; i <= RUNS; i++)); do
    for b in $(rotated $((i - 1))); do sample "$b" "$c" "$p" "$i"; done
  done
}

do_bench() {
  pick_docker_cli
  registry_up || die "registry not running (run.sh setup, or compare.sh kiln-setup)"
  case " $BUILDERS " in *" docker_"*)
    pid_is_ours "$(cat "$W/pids/dockerd.pid" 2>/dev/null)" || die "dockerd not running (run.sh setup)";;
  esac
  mkdir -p "$LOGDIR" "$RESULTS" "$W/tmp"
  : > "$RESULTS/samples.tsv"
  for c in $CASES; do rm -f "$LOGDIR"/cmp-*-"$c".log; done
  merge_cases
  local b c p ok_builders=""
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: nproc $(nproc), memory $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "runs: $RUNS; builders: $BUILDERS; cases: $CASES; SMALL=${SMALL:-0}"
    for b in $BUILDERS; do
      case $b in
        docker_*) echo "$b: docker $("$DOCKER" version --format 'client {{.Client.Version}} / engine {{.Server.Version}}' 2>&1)" ;;
        buildah_*) echo "$b: $(buildah --version)" ;;
        podman) echo "podman: $(podman --version)" ;;
        kiln) echo "kiln: $(kiln_version) (node $(node --version))" ;;
      esac
    done
    echo "runc: $(runc --version 2>/dev/null | head -n1)"
    echo "registry: $(docker-registry --version 2>&1)"
  } > "$RESULTS/versions.txt"
  cat "$RESULTS/versions.txt" >&2
  for c in $CASES; do say "generating context: $c"; gen_context "$c"; done
  for b in $BUILDERS; do
    has_fn "${b}_build" || die "unknown builder $b"
    if has_fn "${b}_setup" && ! "${b}_setup" >> "$LOGDIR/cmp-$b-setup.log" 2>&1; then
      say "$b setup failed (log: $LOGDIR/cmp-$b-setup.log); left out"; continue
    fi
    ok_builders+="$b "
  done
  BUILDERS=$ok_builders
  for c in $CASES; do
    cp -p "$W/ctx/$c.touch-orig" "$W/ctx/$c/$(touch_file "$c")"
    for p in cold warmup cached incr export export_oci export_zstd; do
      say "$c: $p (${RUNS}x: $BUILDERS)"
      if [ $p = warmup ]; then for b in $BUILDERS; do sample "$b" "$c" warmup 1; done
      else phase_all "$c" "$p"; fi
    done
  done
  for b in $BUILDERS; do has_fn "${b}_teardown" && "${b}_teardown" > /dev/null 2>&1; done
  say "samples: $RESULTS/samples.tsv  logs: $LOGDIR/cmp-*.log"
}

case $CMD in
  bench) do_bench ;;
  kiln-setup) do_kiln_setup ;;
  teardown) teardown ;;
  *) die "usage: compare.sh RUN_SH bench|kiln-setup|teardown" ;;
esac
