#!/bin/bash
# The chain push measured against B/T, and against a star push, across test
# hosts on this machine (jobs/netns-cluster), with every host link limited to
# a rate T. The paper's §3.2 argument: pushed along a chain, B bytes to R
# replicas take about B/T whatever R is; sent by the client to each replica
# itself, R·B/T. See --help and bench/README.md ("Chain push across hosts").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BUILD="${GFS_BUILD:-$REPO/build}"
NC="$REPO/jobs/netns-cluster"
R=3
RATE=""
SIZE=256M
STREAM_SIZE=512M
TRANSFER=64M
CHUNK=64M
REPS=2
JSON=""
DATA_ROOT=""
JOB_TIMEOUT=900

usage() {
  cat <<EOF
usage: bench/chain.sh [--rate RATE] [--size SIZE] --json FILE [options]

Brings up test hosts with jobs/netns-cluster (as root; they are taken down on
any exit) and writes one JSON line per measurement to FILE:

 1. mpi_stream: an MPI point-to-point stream (build/bench/gfs-mpi-stream)
    between two hosts with no rate limit: the transport's ceiling here (the
    two cores, not a link). The link rate T is then checked against it:
    R·T must be at most a third of the stream, so that the links are the
    limit. Without --rate, T is 250mbit, or lower if the stream asks for it.
 2. Four hosts, every host link limited to T in both directions (tbf on both
    ends of each veth; the bucket holds 10 ms at the rate, at least 64 KiB,
    with a 100 ms queue). The master and chunkservers 1..3 on h0..h2, the
    client alone on h3 (so every copy it sends crosses its link). Jobs of
    build/gfs-bench (--api gfs, one client, R = $R, the data directories
    on tmpfs so that no disk is the limit), alternating --push chain and
    --push star, REPS times each:
    - chain_push: gfs-bench's write of SIZE bytes in --transfer calls
      (open to close, which syncs every replica), ideal B/T;
    - star_push: the same with --push star (the client sends each replica
      its copy), ideal R·B/T;
    - read: gfs-bench's read of the file back to h3 in --transfer calls
      (its replicas are all on other hosts), ideal B/T;
    - star_vs_chain: the medians against each other: seconds is the star's,
      ideal_seconds R times the chain's;
    - then one more chain job with 1 MiB calls (a reader streaming in small
      reads, which the client's read-ahead serves): read_1m_calls, ideal
      B/T, and chain_push_1m_calls (each 1 MiB write waits for the one
      before: a latency figure, not a link one; ideal B/T all the same);
    - append_8_producers: a job with a chunkserver on each of the 4 hosts
      and 8 producers, two per host, record-appending 64 KiB records to one
      file at R = $R, SIZE bytes in all; ideal B·R / (4·T): each byte
      crosses R host links and the 4 hosts send at T each (a byte whose
      chain starts on its producer's host crosses one fewer, so this ratio
      can pass 1).

Each line has what, seconds, ideal_seconds and ratio = ideal_seconds /
seconds (1.0: at the link rate; the targets are chain >= 1/1.1 = 0.91,
star about 1, read >= 0.9), plus bytes, rate_mbit, rep and mb_per_s.
Every link carries TCP/IP headers too (about 3.5% at MTU 1500): a ratio of
about 0.96 is the most a link-limited transfer can show.

Options:
  --rate RATE          link rate T, tc style (250mbit, 30mbps; default: see 1.)
  --size SIZE          bytes B per push and read (K/M/G binary; default $SIZE)
  --json FILE          where the JSON lines go (appended)
  --reps N             jobs per push mode (default $REPS)
  --transfer SIZE      bytes per write and read call (gfs-bench -t; default
                       $TRANSFER, or SIZE if smaller): a large write is cut
                       into mutations with several in flight, as 'gfs put'
                       does; 1 MiB calls would each wait for the one before
  --chunk-size SIZE    chunk size (default $CHUNK)
  --stream-size SIZE   bytes of the MPI stream (default $STREAM_SIZE)
  --data-root DIR      where the hosts' data directories go (default: a new
                       directory under /dev/shm)
  --help               this text

Environment: GFS_BUILD (default $REPO/build: gfs, gfs-bench and
bench/gfs-mpi-stream must be built there).
EOF
}

die() {
  echo "chain.sh: $*" >&2
  exit 1
}

bytes_of() {
  local s="${1^^}" n
  [[ "$s" =~ ^([0-9]+)([KMG]?)$ ]] || die "'$1' is not a size (e.g. 256M)"
  n="${BASH_REMATCH[1]}"
  case "${BASH_REMATCH[2]}" in
    K) n=$((n << 10)) ;;
    M) n=$((n << 20)) ;;
    G) n=$((n << 30)) ;;
  esac
  ((n > 0)) || die "'$1': the size must be positive"
  echo "$n"
}

# mbit_of RATE: the rate in Mbit/s (10^6 bits), as netns-cluster reads it.
mbit_of() {
  local r="${1,,}"
  [[ "$r" =~ ^([0-9]+)(kbit|mbit|gbit|kbps|mbps|gbps)$ ]] ||
    die "--rate: '$1' is not a rate (e.g. 250mbit, 30mbps)"
  python3 -c 'import sys; n=int(sys.argv[1]); u=sys.argv[2]
f={"kbit":1e-3,"mbit":1,"gbit":1e3,"kbps":8e-3,"mbps":8,"gbps":8e3}[u]
print("%g" % (n*f))' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
}

while (($#)); do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --rate) RATE="${2:-}"; shift 2 || die "--rate needs a value" ;;
    --size) SIZE="${2:-}"; shift 2 || die "--size needs a value" ;;
    --json) JSON="${2:-}"; shift 2 || die "--json needs a value" ;;
    --reps) REPS="${2:-}"; shift 2 || die "--reps needs a value" ;;
    --transfer) TRANSFER="${2:-}"; shift 2 || die "--transfer needs a value" ;;
    --chunk-size) CHUNK="${2:-}"; shift 2 || die "--chunk-size needs a value" ;;
    --stream-size) STREAM_SIZE="${2:-}"; shift 2 || die "--stream-size needs a value" ;;
    --data-root) DATA_ROOT="${2:-}"; shift 2 || die "--data-root needs a value" ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ -n "$JSON" ]] || { usage >&2; exit 2; }
[[ "$REPS" =~ ^[0-9]+$ ]] && ((REPS >= 1)) || die "--reps must be a positive count"
B="$(bytes_of "$SIZE")"
STREAM_B="$(bytes_of "$STREAM_SIZE")"
TB="$(bytes_of "$TRANSFER")"
((TB <= B)) || TB="$B"
((B % TB == 0)) || die "--size must be a multiple of --transfer"
bytes_of "$CHUNK" >/dev/null
[[ -z "$RATE" ]] || mbit_of "$RATE" >/dev/null
((EUID == 0)) || die "run as root (network namespaces)"
for f in gfs gfs-bench bench/gfs-mpi-stream; do
  [[ -x "$BUILD/$f" ]] || die "$BUILD/$f is missing: cmake --build build --target ${f##*/}"
done
: >>"$JSON" || die "cannot write $JSON"

# The cluster: its own name, state and data directories, removed on any exit.
WORK="$(mktemp -d "${DATA_ROOT:-/dev/shm}/gfs-chain.XXXXXX")"
export GFS_NETNS_NAME="cb$$"
export GFS_NETNS_STATE="$WORK/state"
export GFS_NETNS_DATA="$WORK/hosts"
S="$GFS_NETNS_STATE/$GFS_NETNS_NAME"
LOCAL="$GFS_NETNS_DATA/$GFS_NETNS_NAME/local"
cleanup() {
  "$NC" down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'exit 130' INT TERM HUP

emit() { echo "$1" | tee -a "$JSON"; }

# ---- 1. the MPI stream between two hosts, no rate limit
"$NC" up 2 >/dev/null || die "netns-cluster up 2 failed"
SUBNET="$(awk '$1 == "subnet" {print $2}' "$S/cluster")"
MPI_NET=(--mca plm_rsh_agent "$S/agent" --mca plm_rsh_no_tree_spawn 1
  --mca btl self,tcp --mca btl_tcp_if_include "$SUBNET" --mca oob_tcp_if_include "$SUBNET"
  --bind-to none --oversubscribe)
stream_out="$(timeout 300 "$NC" exec h0 mpirun -q --allow-run-as-root --hostfile "$S/hostfile" \
  --map-by node -np 2 "${MPI_NET[@]}" "$BUILD/bench/gfs-mpi-stream" "$STREAM_B")" ||
  die "the MPI stream between h0 and h1 failed"
"$NC" down >/dev/null
STREAM_MBIT="$(python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["mbit_per_s"])' \
  "$stream_out")"
# T: R·T at most a third of the stream.
MAX_T="$(python3 -c 'import sys; print(int(float(sys.argv[1]) / 3 / int(sys.argv[2])))' \
  "$STREAM_MBIT" "$R")"
if [[ -z "$RATE" ]]; then
  RATE=250mbit
  if ((MAX_T < 250)); then
    RATE="$((MAX_T / 10 * 10))mbit"
    ((MAX_T >= 10)) || RATE="${MAX_T}mbit"
    echo "chain.sh: the stream ($STREAM_MBIT Mbit/s) asks for T <= $MAX_T Mbit/s: T = $RATE" >&2
  fi
fi
T_MBIT="$(mbit_of "$RATE")"
VALID="$(python3 -c 'import sys; print("true" if int(sys.argv[3]) * float(sys.argv[1]) <= float(sys.argv[2]) / 3 else "false")' \
  "$T_MBIT" "$STREAM_MBIT" "$R")"
[[ "$VALID" == true ]] ||
  echo "chain.sh: warning: R·T = $R x $T_MBIT Mbit/s is more than a third of the stream ($STREAM_MBIT Mbit/s): the cores may be the limit" >&2
emit "$(python3 - "$stream_out" "$T_MBIT" "$R" "$VALID" <<'EOF'
import json, sys
s = json.loads(sys.argv[1])
t, r = float(sys.argv[2]), int(sys.argv[3])
# No ideal for the stream itself: its ratio is the stream against R·T
# (at least 3 for T to be valid).
print(json.dumps({"what": "mpi_stream", "seconds": s["seconds"], "ideal_seconds": None,
                  "ratio": round(s["mbit_per_s"] / (r * t), 3), "bytes": int(s["bytes"]),
                  "mbit_per_s": s["mbit_per_s"], "rate_mbit": t, "replication": r,
                  "rate_valid": sys.argv[4] == "true"}))
EOF
)"

# ---- 2. four hosts, every link at T
"$NC" up 4 --rate "$RATE" >/dev/null || die "netns-cluster up 4 --rate $RATE failed"
job=0
# run_job MODE [TRANSFER]: one gfs-bench job (write, then read) with --push MODE, on a
# fresh store; its JSON lines go to $WORK/job<N>.json, N the job's number.
# The job runs in the background so that a signal reaches the traps at once.
run_job() {
  local mode="$1" t="${2:-$TB}" h pid
  job=$((job + 1))
  GFS_BIN="$BUILD/gfs-bench" timeout "$JOB_TIMEOUT" "$NC" gfs --on h3 --chunkservers 3 \
    --replication "$R" --chunk-size "$CHUNK" --data-dir "$LOCAL/job$job" --push "$mode" \
    --api gfs --workload write,read -t "$t" -b "$B" --reps 1 --memcpy-mib 16 \
    --dir "$WORK" --json "$WORK/job$job.json" >"$WORK/job$job.log" 2>&1 &
  pid=$!
  wait "$pid" || die "gfs-bench job $job (--push $mode) failed: $(tail -n 3 "$WORK/job$job.log")"
  for h in h0 h1 h2 h3; do "$NC" exec "$h" rm -rf "$LOCAL/job$job"; done
}

# emit_job MODE REP SUFFIX: the last job's lines, as this script's.
emit_job() {
  local line
  while read -r line; do
    [[ -n "$line" ]] || continue
    emit "$(python3 - "$line" "$1" "$T_MBIT" "$R" "$2" "$B" "$3" <<'EOF'
import json, sys
g = json.loads(sys.argv[1])
mode, t, r, rep, b = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
suffix = sys.argv[7]
bps = t * 1e6 / 8  # the link rate in bytes per second
if g["workload"] == "write":
    what = mode + "_push"
    ideal = (b if mode == "chain" else r * b) / bps
else:
    what = "read"
    ideal = b / bps
print(json.dumps({"what": what + suffix, "push": mode, "seconds": g["seconds"],
                  "ideal_seconds": round(ideal, 3), "ratio": round(ideal / g["seconds"], 3),
                  "bytes": g["bytes"], "transfer": g["transfer"], "mb_per_s": g["mb_per_s"],
                  "rate_mbit": t, "replication": r, "rep": rep, "errors": g["errors"]}))
EOF
)"
  done <"$WORK/job$job.json"
}

for ((rep = 1; rep <= REPS; ++rep)); do
  for mode in chain star; do
    run_job "$mode"
    emit_job "$mode" "$rep" ""
  done
done

# ---- the medians, star against chain
emit "$(python3 - "$JSON" "$$" "$R" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# This run's rows: the last ones written (the file may hold earlier runs).
def med(what):
    v = []
    for row in reversed(rows):
        if row.get("what") == "mpi_stream":
            break
        if row.get("what") == what:
            v.append(row["seconds"])
    v.sort()
    return v[len(v) // 2] if v else 0
r = int(sys.argv[3])
c, s = med("chain_push"), med("star_push")
print(json.dumps({"what": "star_vs_chain", "seconds": s, "ideal_seconds": round(r * c, 3),
                  "ratio": round(r * c / s, 3) if s else None,
                  "star_over_chain": round(s / c, 3) if c else None, "replication": r}))
EOF
)"

# ---- small calls: a streaming reader of 1 MiB reads (read-ahead at work)
run_job chain 1M
emit_job chain 1 _1m_calls

# ---- 8 producers spread over the 4 hosts (two per host, beside a chunkserver on
# each) record-appending 64 KiB records to one file at R, SIZE bytes in all. The
# bound the links allow: each byte crosses R host links and the 4 hosts send at T
# each, so B·R / (4·T) (a byte whose chain starts on its producer's own host
# crosses one link fewer, so the ratio can pass 1 by up to R / (R - 1)).
job=$((job + 1))
GFS_BIN="$BUILD/gfs-bench" timeout "$JOB_TIMEOUT" "$NC" gfs --chunkservers 4 --clients 8 \
  --replication "$R" --chunk-size "$CHUNK" --data-dir "$LOCAL/job$job" \
  --api gfs --workload append -t 64K -b "$((B / 8))" --reps 1 --memcpy-mib 16 \
  --dir "$WORK" --json "$WORK/job$job.json" >"$WORK/job$job.log" 2>&1 &
pid=$!
wait "$pid" || die "gfs-bench append job $job failed: $(tail -n 3 "$WORK/job$job.log")"
for h in h0 h1 h2 h3; do "$NC" exec "$h" rm -rf "$LOCAL/job$job"; done
emit "$(python3 - "$WORK/job$job.json" "$T_MBIT" "$R" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
t, r = float(sys.argv[2]), int(sys.argv[3])
g = next(x for x in rows if x["workload"] == "append" and not x.get("op"))
bps = t * 1e6 / 8
ideal = g["bytes"] * r / (4 * bps)
print(json.dumps({"what": "append_8_producers", "seconds": g["seconds"],
                  "ideal_seconds": round(ideal, 3), "ratio": round(ideal / g["seconds"], 3),
                  "bytes": g["bytes"], "mb_per_s": g["mb_per_s"], "producers": 8, "hosts": 4,
                  "rate_mbit": t, "replication": r, "errors": g["errors"]}))
EOF
)"
