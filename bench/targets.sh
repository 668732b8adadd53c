#!/bin/bash
# Runs the performance target configurations with one gfs-bench binary and prints each
# configuration's summary rows (medians over reps, ratios from the same run).
#
#   bench/targets.sh [--bench PATH] [--out DIR] [--reps N] [--disk DIR] [--shm DIR]
#                    [--scale-down N]
#
# --bench  gfs-bench to run (default: build/gfs-bench next to this script)
# --out    where the JSON lines and full outputs go (default: ./targets-<time>)
# --reps   repetitions per configuration (default 5)
# --disk   scratch directory on the local disk (default /tmp/gfs-targets)
# --shm    scratch directory on tmpfs (default /dev/shm/gfs-targets)
# --scale-down N   divide every block size by N (a quick smoke run; the
#          target numbers are taken at N = 1)
#
# Needs root for --drop-caches (the read phase on disk). The scratch
# directories are removed before and after each configuration.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$here/../build/gfs-bench"
out="./targets-$(date +%Y%m%d-%H%M%S)"
reps=5
disk=/tmp/gfs-targets
shm=/dev/shm/gfs-targets
div=1

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bench) bench="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --disk) disk="$2"; shift 2 ;;
    --shm) shm="$2"; shift 2 ;;
    --scale-down) div="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "targets.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x "$bench" ]] || { echo "targets.sh: no gfs-bench at $bench (build first)" >&2; exit 2; }
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "targets.sh: --reps must be a positive number" >&2; exit 2; }
[[ "$div" =~ ^(1|2|4|8|16|32|64)$ ]] || {
  echo "targets.sh: --scale-down must be one of 1 2 4 8 16 32 64" >&2
  exit 2
}
mb() { echo "$(($1 / div))M"; }  # block size in MiB, scaled down
mkdir -p "$out"

run() {  # name scratch [gfs-bench options...]
  local name="$1" dir="$2"
  shift 2
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "== $name: gfs-bench --data-dir $dir/d --dir $dir $*"
  if ! "$bench" --data-dir "$dir/d" --dir "$dir" --reps "$reps" --json "$out/$name.json" "$@" \
      >"$out/$name.txt" 2>&1; then
    echo "targets.sh: $name failed; see $out/$name.txt" >&2
    rm -rf "$dir"
    return 1
  fi
  sed -n '/^workload/,$p' "$out/$name.txt"
  rm -rf "$dir"
}

status=0
run write-read-r1 "$disk" --chunkservers 1 --clients 2 --replication 1 -t 1M -b "$(mb 256)" \
  --api gfs,mpiio,posix --workload write,read --drop-caches || status=1
run append-8 "$disk" --chunkservers 1 --clients 8 --replication 1 -t 64K -b "$(mb 64)" \
  --api gfs --workload append || status=1
run write-r3 "$disk" --chunkservers 3 --clients 2 --replication 3 -t 1M -b "$(mb 64)" \
  --api gfs,mpiio --workload write || status=1
run write-r3-256 "$disk" --chunkservers 3 --clients 2 --replication 3 -t 1M -b "$(mb 256)" \
  --api gfs,mpiio --workload write || status=1
run tmpfs-r1 "$shm" --chunkservers 2 --clients 2 --replication 1 -F -t 1M -b "$(mb 128)" \
  --api gfs,mpiio --workload write,read || status=1
echo "JSON lines and full outputs in $out"
exit $status
