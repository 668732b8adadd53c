#!/bin/bash
# Demo: build gfs, then on the one-machine default (master + 3 chunkservers +
# clients under one mpirun, started by the gfs launcher):
#  1. the producer-consumer job: 4 producer ranks record-append to one file
#     while a consumer rank tails it and checks every record arrived once;
#  2. store a generated file, read it back in a second job, verify it, and
#     show what is on disk.
#
#   GFS_DEMO_RECORDS records per producer (default 5000)
# Usage: jobs/demo.sh [DATA_DIR]
#   DATA_DIR      data directory (default: $GFS_DEMO_DIR or ./gfs-data-demo)
#   GFS_DEMO_MB   size of the generated file in MiB (default 256)
#   GFS_DEMO_ARGS extra global options for gfs, e.g. "--chunkservers 4 --chunk-size 8M"
set -euo pipefail

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/setup.sh"

DATA="${1:-${GFS_DEMO_DIR:-./gfs-data-demo}}"
MB="${GFS_DEMO_MB:-256}"
read -r -a EXTRA <<<"${GFS_DEMO_ARGS:-}"
G=("$GFS" --data-dir "$DATA" "${EXTRA[@]}")

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gfs-demo.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

now_ns() { date +%s%N; }
run() {
  echo "\$ gfs ${*}"
  timeout 600 "${G[@]}" "$@"
}

echo "== gfs demo: data directory $DATA"
mkdir -p "$DATA"

LOCAL="$TMP/data.bin"
OUT="$TMP/data.out"
echo "== generating $MB MiB of random data"
head -c "$((MB * 1048576))" /dev/urandom >"$LOCAL"
SIZE="$(stat -c %s "$LOCAL")"
SUM_IN="$(sha256sum "$LOCAL" | cut -d' ' -f1)"

# Start clean: an earlier run may have left /demo behind.
timeout 600 "${G[@]}" rm -r /demo >/dev/null 2>&1 || true
run mkdir -p /demo

echo "\$ gfs put $LOCAL /demo/data.bin"
t0="$(now_ns)"
timeout 600 "${G[@]}" put "$LOCAL" /demo/data.bin
t1="$(now_ns)"
PUT_NS=$((t1 - t0))

echo "\$ gfs get /demo/data.bin $OUT"
t0="$(now_ns)"
timeout 600 "${G[@]}" get /demo/data.bin "$OUT"
t1="$(now_ns)"
GET_NS=$((t1 - t0))

SUM_OUT="$(sha256sum "$OUT" | cut -d' ' -f1)"
if [[ "$SUM_IN" != "$SUM_OUT" ]]; then
  echo "demo: FAILED: sha256 differs: put $SUM_IN, got back $SUM_OUT" >&2
  exit 1
fi

run ls -R /
run stat /demo/data.bin
STAT_JSON="$(timeout 600 "${G[@]}" stat --json /demo/data.bin)"

echo
echo "== replicas on disk"
nservers=0
for d in "$DATA"/chunkserver-*; do
  [[ -d "$d" ]] || continue
  nservers=$((nservers + 1))
  n="$(find "$d" -path '*chunks*' -name '*.chunk' -type f | wc -l)"
  bytes="$(find "$d" -path '*chunks*' -name '*.chunk' -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')"
  echo "$d: $n chunk files, $bytes bytes"
  find "$d" -path '*chunks*' -name '*.chunk' -type f -printf '  %p  %s bytes\n' | sort | head -n 4
done
echo "(chunk files are named by their 64-bit handle; each chunk is stored on 'replication' chunkservers)"

python3 - "$STAT_JSON" "$SIZE" "$PUT_NS" "$GET_NS" "$nservers" "$SUM_IN" <<'PY'
import json, sys
st = json.loads(sys.argv[1])
size, put_ns, get_ns, nservers, digest = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
if int(st["size"]) != size:
    print(f"demo: FAILED: stat size {st['size']} != {size}", file=sys.stderr)
    sys.exit(1)
def mbps(ns): return size / 1e6 / max(ns / 1e9, 1e-9)
print()
print("== summary")
print(f"file:          /demo/data.bin, {size} bytes ({size / 1048576:.0f} MiB), sha256 {digest}")
print(f"chunk size:    {st['chunk_size']} bytes, {st['chunks']} chunks")
print(f"replication:   {st['replication']}")
print(f"chunkservers:  {nservers} (directories under the data directory)")
print(f"put:           {put_ns / 1e9:.2f} s, {mbps(put_ns):.1f} MB/s (whole job: mpirun start, write, shutdown)")
print(f"get:           {get_ns / 1e9:.2f} s, {mbps(get_ns):.1f} MB/s (whole job)")
print("verify:        read back bit-for-bit identical (sha256)")
PY
echo
echo "== producer-consumer: 4 producers append to /demo/records.log, 1 consumer tails it"
timeout 600 "${G[@]}" rm /demo/records.log >/dev/null 2>&1 || true
echo "\$ gfs --clients 5 producer-consumer --file /demo/records.log --producers 4 --records ${GFS_DEMO_RECORDS:-5000}"
timeout 900 "${G[@]}" --clients 5 producer-consumer --file /demo/records.log --producers 4 \
  --records "${GFS_DEMO_RECORDS:-5000}" --min-size 64 --max-size 65536
echo "demo: OK"
