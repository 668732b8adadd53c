#!/bin/bash
# Re-replication time: one job writes SIZE bytes with R = 3 on K = 4
# chunkservers, waits until every chunk is fully replicated, and this script
# SIGKILLs one chunkserver rank; the job's client polls fsck until every chunk
# has R good replicas again. Measured in the same run: a plain copy of the
# same bytes (the killed server's chunk files, dd conv=fsync each, on the same
# file system), and the ratio of the two bandwidths. See --help.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${GFS_BUILD:-$HERE/../build}"
SIZE=1G
CHUNK=64M
K=4
R=3
VICTIM=1
DIR=""
HB=100
TIMEOUT_MS=2000
LEASE=2
POLL_MS=50
VERIFY=1
JSON=""
KEEP=0
JOB_TIMEOUT=1800

usage() {
  cat <<EOF
usage: bench/rereplication.sh [options]

Time from a chunkserver kill to full replication, against a plain copy of the
same bytes. One MPI job (build/bench/gfs-rerep-bench, 1 master + K
chunkservers + 1 client) writes SIZE bytes to /big with R replicas, waits until
every chunk has R replicas and the write leases have run out, then this script
SIGKILLs one chunkserver rank; the client polls fsck every --poll-ms until every
chunk has R good replicas again. After the job, the killed server's chunk files
(exactly the bytes that had to be re-created) are copied with
'dd bs=4M conv=fsync', one file per chunk, on the same file system: once in
one stream, once in K - 1 streams at once (the number of clone targets).

Reported: bytes re-replicated; seconds from the kill to full replication, split
into detection (kill -> the first fsck that shows a chunk short: the master
declares a server dead when it has not heard a heartbeat for 5 heartbeat
intervals + one request timeout, so 4..5 intervals + timeout after the kill)
and copy (detection -> fully replicated; the master orders clones at most one
per target server at a time, scanning every min(heartbeat, 500 ms)); MB/s
(10^6 bytes) of the copy part and end to end; the plain copies' MB/s and the
ratios. Event times are +-poll-ms.

Options:
  --size SIZE          bytes written (K/M/G binary suffixes; default $SIZE)
  --chunk-size SIZE    chunk size (default $CHUNK)
  --chunkservers K     chunkserver ranks (default $K)
  --replication R      replicas per chunk (default $R)
  --victim N           chunkserver to kill, 1..K (its MPI rank; default $VICTIM)
  --data-dir DIR       directory for the store (DIR/store), the job's files
                       (DIR/work) and the plain copy (DIR/copy), so both copies
                       hit the same file system; must be empty or absent
                       (default: a new directory under \${TMPDIR:-/tmp})
  --heartbeat-ms MS    chunkserver heartbeat interval (default $HB)
  --timeout-ms MS      request deadline (default $TIMEOUT_MS); with the heartbeat
                       it sets the detection time 5*heartbeat + timeout
  --lease-seconds S    write lease (default $LEASE); the kill comes after S+1 s
                       so no lease holds a clone back
  --poll-ms MS         fsck polling interval of the client (default $POLL_MS)
  --no-verify          do not read the file back after the repair
  --json FILE          append one JSON line with the results to FILE
  --build DIR          build directory (default \$GFS_BUILD or bench/../build)
  --keep               keep the directory (store, stats, copy) afterwards
  -h, --help           this help
EOF
}

die() {
  echo "rereplication.sh: $*" >&2
  exit 1
}

bytes_of() {  # 1G -> 1073741824
  local v="$1" n unit
  [[ "$v" =~ ^([0-9]+)([KkMmGgTt]?)i?[Bb]?$ ]] || die "bad size '$v'"
  n="${BASH_REMATCH[1]}"
  unit="${BASH_REMATCH[2]}"
  case "$unit" in
    K | k) n=$((n << 10)) ;;
    M | m) n=$((n << 20)) ;;
    G | g) n=$((n << 30)) ;;
    T | t) n=$((n << 40)) ;;
  esac
  echo "$n"
}

while (($#)); do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --chunk-size) CHUNK="$2"; shift 2 ;;
    --chunkservers) K="$2"; shift 2 ;;
    --replication) R="$2"; shift 2 ;;
    --victim) VICTIM="$2"; shift 2 ;;
    --data-dir) DIR="$2"; shift 2 ;;
    --heartbeat-ms) HB="$2"; shift 2 ;;
    --timeout-ms) TIMEOUT_MS="$2"; shift 2 ;;
    --lease-seconds) LEASE="$2"; shift 2 ;;
    --poll-ms) POLL_MS="$2"; shift 2 ;;
    --no-verify) VERIFY=0; shift ;;
    --json) JSON="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

BYTES="$(bytes_of "$SIZE")"
CHUNK_BYTES="$(bytes_of "$CHUNK")"
((VICTIM >= 1 && VICTIM <= K)) || die "--victim must be in 1..$K"
((R <= K - 1)) || die "R = $R replicas cannot be restored on K - 1 = $((K - 1)) servers"
PROG="$BUILD/bench/gfs-rerep-bench"
[[ -x "$PROG" ]] || die "$PROG not found: cmake --build $BUILD --target gfs-rerep-bench"
PROG="$(cd "$(dirname "$PROG")" && pwd)/$(basename "$PROG")"

MADE_DIR=0
if [[ -z "$DIR" ]]; then
  DIR="$(mktemp -d "${TMPDIR:-/tmp}/gfs-rerep.XXXXXX")"
  MADE_DIR=1
else
  [[ ! -e "$DIR" ]] && MADE_DIR=1
  mkdir -p "$DIR"
  [[ -z "$(ls -A "$DIR")" ]] || die "$DIR is not empty"
fi
DIR="$(cd "$DIR" && pwd)"
STORE="$DIR/store"
WORK="$DIR/work"
COPY="$DIR/copy"
mkdir -p "$WORK" "$COPY"
JOB_PID=""

# pids of the job's processes: timeout, mpirun and the ranks all name both
# $PROG and $STORE on their command lines (the grep looking for them names
# only $STORE).
job_pids() {
  local f pid cmd
  for f in $(grep -lsF -- "$STORE" /proc/[0-9]*/cmdline 2>/dev/null); do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    cmd="$(tr '\0' ' ' 2>/dev/null <"$f")" || continue
    [[ "$cmd" == *"$PROG"* ]] && echo "$pid"
  done
  return 0
}

cleanup() {
  local rc=$? p left
  [[ -n "$JOB_PID" ]] && kill "$JOB_PID" 2>/dev/null
  # Ranks may still be finishing after mpirun returned: give them 10 s.
  for _ in $(seq 1 100); do
    left="$(job_pids)"
    [[ -z "$left" ]] && break
    sleep 0.1
  done
  if [[ -n "$left" ]]; then
    echo "rereplication.sh: ending job processes still running: $left" >&2
    for p in $left; do kill -9 "$p" 2>/dev/null || true; done
  fi
  if ((KEEP)); then
    echo "kept $DIR" >&2
  elif ((MADE_DIR)); then
    rm -rf "$DIR"
  else
    rm -rf "$STORE" "$WORK" "$COPY"
  fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rank_pid RANK: the process that is MPI rank RANK of the job (ranks carry
# OMPI_COMM_WORLD_RANK in their environment; mpirun and timeout do not).
rank_pid() {
  local pid cmd r
  for pid in $(job_pids); do
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || continue
    [[ "$cmd" == *mpirun* || "$cmd" == *orted* || "$cmd" == timeout* ]] && continue
    r="$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')" ||
      continue
    if [[ "$r" == "$1" ]]; then
      echo "$pid"
      return 0
    fi
  done
}

job_running() { kill -0 "$JOB_PID" 2>/dev/null; }

MPIRUN=(mpirun --oversubscribe --enable-recovery -q --mca async_mpi_finalize 1 --mca rtc_hwloc_vmhole none)
[[ "$(id -u)" == 0 ]] && MPIRUN+=(--allow-run-as-root)
echo "rereplication: $BYTES bytes, chunk $CHUNK_BYTES, K=$K R=$R, heartbeat ${HB} ms," \
  "timeout ${TIMEOUT_MS} ms, lease ${LEASE} s, in $DIR"
T0="$(date +%s%N)"
timeout -k 20 "$JOB_TIMEOUT" "${MPIRUN[@]}" -np $((K + 2)) "$PROG" "$STORE" "$WORK" \
  cs="$K" r="$R" chunk="$CHUNK_BYTES" hb="$HB" timeout="$TIMEOUT_MS" lease="$LEASE" \
  bytes="$BYTES" poll_ms="$POLL_MS" verify="$VERIFY" stats="$WORK/stats" \
  </dev/null >"$WORK/job.out" 2>"$WORK/job.err" &
JOB_PID=$!

while [[ ! -s "$WORK/ready" ]]; do
  job_running || die "the job ended before the store was ready: $(cat "$WORK/result" 2>/dev/null)
$(tail -n 20 "$WORK/job.err")"
  sleep 0.2
done
T_READY="$(date +%s%N)"
read -r _ vchunks vbytes vdir < <(awk -v r="$VICTIM" '$1 == r' "$WORK/ready")
[[ -n "${vdir:-}" ]] || die "rank $VICTIM is not a chunkserver of the job: $(cat "$WORK/ready")"
echo "  written and fully replicated in $(awk -v a="$T0" -v b="$T_READY" \
  'BEGIN { printf "%.1f", (b - a) / 1e9 }') s; replicas per server (rank chunks bytes dir):"
grep . "$WORK/ready" | sed 's/^/    /'
pid="$(rank_pid "$VICTIM")"
[[ -n "$pid" ]] || die "chunkserver rank $VICTIM is not running"
T_KILL="$(date +%s%N)"
kill -9 "$pid"
echo "$VICTIM $T_KILL" >"$WORK/killed.tmp"
mv "$WORK/killed.tmp" "$WORK/killed"
echo "  SIGKILL chunkserver rank $VICTIM (pid $pid, $vchunks chunks, $vbytes bytes)"

wait "$JOB_PID" || true
JOB_PID=""
RESULT="$(cat "$WORK/result" 2>/dev/null || echo "FAIL no result written")"
[[ "$RESULT" == OK* ]] || die "job: $RESULT
$(tail -n 20 "$WORK/job.err")"
declare -A res=()
for kv in ${RESULT#OK }; do res[${kv%%=*}]="${kv#*=}"; done

# Clone counters from the ranks that lived to the end (the killed one did not).
read -r clones_done clones_failed clone_bytes < <(python3 - "$WORK/stats" <<'EOF'
import glob, json, sys
done = failed = cbytes = 0
for p in glob.glob(sys.argv[1] + "/rank-*.json"):
    j = json.load(open(p))
    c = j.get("counters", {})
    if j.get("role") == "master":
        done += c.get("clones_done", 0)
        failed += c.get("clones_failed", 0)
    else:
        cbytes += c.get("clone_bytes", 0)
print(done, failed, cbytes)
EOF
)

# Servers the master declared dead: the victim, and any other whose
# heartbeats were late by 5 intervals + timeout (a false detection).
declared_dead="$(grep -c "missed its heartbeats" "$WORK/job.err" || true)"

# The plain copy: the victim's chunk files, one dd with fsync per chunk, as
# the clones write them (page cache as the job left it: the sources of the
# clones were just written, so were these). Then the same with K - 1 streams
# at once (files dealt round-robin), as many as there are clone targets.
sync
shopt -s nullglob
files=("$STORE/$vdir/chunks/"*.chunk)
((${#files[@]} > 0)) || die "no chunk files in $STORE/$vdir/chunks"
copy_bytes="$(cat "${files[@]}" | wc -c)"
C0="$(date +%s%N)"
for f in "${files[@]}"; do
  dd if="$f" of="$COPY/$(basename "$f")" bs=4M conv=fsync status=none
done
C1="$(date +%s%N)"
rm -rf "$COPY"
mkdir -p "$COPY"
STREAMS=$((K - 1))
P0="$(date +%s%N)"
stream_pids=()
for ((s = 0; s < STREAMS; s++)); do
  (
    for ((i = s; i < ${#files[@]}; i += STREAMS)); do
      dd if="${files[i]}" of="$COPY/$(basename "${files[i]}")" bs=4M conv=fsync status=none
    done
  ) &
  stream_pids+=($!)
done
for p in "${stream_pids[@]}"; do wait "$p" || die "a parallel copy stream failed"; done
P1="$(date +%s%N)"

read -r line < <(awk -v kill="${res[kill_ns]}" -v det="${res[detect_ns]}" \
  -v first="${res[first_repair_ns]}" -v full="${res[full_ns]}" -v b="${res[victim_bytes]}" \
  -v c0="$C0" -v c1="$C1" -v p0="$P0" -v p1="$P1" -v cb="$copy_bytes" -v hb="$HB" \
  -v to="$TIMEOUT_MS" 'BEGIN {
    detect = (det - kill) / 1e9; copy = (full - det) / 1e9; total = (full - kill) / 1e9
    first_s = (first - det) / 1e9; plain = (c1 - c0) / 1e9; par = (p1 - p0) / 1e9
    copy_mbs = b / copy / 1e6; total_mbs = b / total / 1e6
    plain_mbs = cb / plain / 1e6; par_mbs = cb / par / 1e6
    printf "%.3f %.3f %.3f %.3f %.3f %.3f %.1f %.1f %.1f %.1f %.3f %.3f %.3f %.3f %.3f\n",
      detect, copy, total, first_s, plain, par, copy_mbs, total_mbs, plain_mbs, par_mbs,
      copy_mbs / plain_mbs, total_mbs / plain_mbs, copy_mbs / par_mbs,
      (4 * hb + to) / 1000, (5 * hb + to) / 1000
  }')
read -r detect_s copy_s total_s first_s plain_s par_s copy_mbs total_mbs plain_mbs par_mbs \
  ratio_copy ratio_total ratio_par expect_lo expect_hi <<<"$line"

cat <<EOF
  re-replicated: ${res[victim_bytes]} bytes in ${res[victim_chunks]} chunks (clones done $clones_done, failed $clones_failed, bytes cloned $clone_bytes; at most ${res[short_chunks]} chunks short at once; servers declared dead: $declared_dead)
  kill -> full replication: $total_s s = detection $detect_s s (expected $expect_lo..$expect_hi s: the last heartbeat + 5 heartbeats + timeout) + copy $copy_s s (first chunk back after $first_s s)
  re-replication: $copy_mbs MB/s (copy part), $total_mbs MB/s (from the kill)
  plain copy:     $copy_bytes bytes in $plain_s s = $plain_mbs MB/s (dd bs=4M conv=fsync per chunk file); $STREAMS streams: $par_s s = $par_mbs MB/s
  ratio to the plain copy: $ratio_copy (copy part), $ratio_total (from the kill); copy part to $STREAMS plain streams: $ratio_par
EOF

if [[ -n "$JSON" ]]; then
  # Through Python's json: numbers that did not come out (a zero time) are
  # null, never nan or inf.
  python3 - "$JSON" \
    size="$BYTES" chunk_size="$CHUNK_BYTES" chunkservers="$K" replication="$R" \
    heartbeat_ms="$HB" timeout_ms="$TIMEOUT_MS" lease_seconds="$LEASE" poll_ms="$POLL_MS" \
    victim_rank="$VICTIM" put_s="${res[put_s]}" bytes_rereplicated="${res[victim_bytes]}" \
    chunks_rereplicated="${res[victim_chunks]}" max_short_chunks="${res[short_chunks]}" \
    servers_declared_dead="$declared_dead" clones_done="$clones_done" \
    clones_failed="$clones_failed" clone_bytes="$clone_bytes" kill_to_full_s="$total_s" \
    detect_s="$detect_s" expected_detect_lo_s="$expect_lo" expected_detect_hi_s="$expect_hi" \
    copy_s="$copy_s" first_chunk_s="$first_s" rerep_copy_mb_s="$copy_mbs" \
    rerep_total_mb_s="$total_mbs" plain_copy_bytes="$copy_bytes" plain_copy_s="$plain_s" \
    plain_copy_mb_s="$plain_mbs" plain_streams="$STREAMS" plain_par_s="$par_s" \
    plain_par_mb_s="$par_mbs" ratio_copy="$ratio_copy" ratio_total="$ratio_total" \
    ratio_copy_par="$ratio_par" <<'PY'
import json, math, sys
out = {"bench": "rereplication"}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    try:
        x = float(v)
        out[k] = (int(x) if x.is_integer() and "." not in v else x) if math.isfinite(x) else None
    except ValueError:
        out[k] = None
out["expected_detect_s"] = [out.pop("expected_detect_lo_s"), out.pop("expected_detect_hi_s")]
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(out) + "\n")
PY
fi
