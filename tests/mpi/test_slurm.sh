#!/bin/bash
# The Slurm scripts (jobs/slurm/*.sbatch) in a fake two-node allocation:
# scontrol, srun and mpirun on PATH are stand-ins. The fake mpirun records its
# command line and plays the first client: it writes the status file the
# script passed with --status-file (FAKE_STATUS; "none" writes nothing, as a
# job that died). Checks: one chunkserver per node and the master on the
# first (the rankfile), the job id in every output name, and the script's exit
# status is the one the job reported (3 when none).
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

ROOT="$(cd "$HERE/../.." && pwd)"
FAKE="$TMP/fakebin"
mkdir -p "$FAKE" "$TMP/submit"
cat >"$FAKE/scontrol" <<'SH'
#!/bin/bash
# scontrol show hostnames LIST -> one node per line
[[ "$1 $2" == "show hostnames" ]] || { echo "fake scontrol: $*" >&2; exit 1; }
printf 'node1\nnode2\n'
SH
cat >"$FAKE/srun" <<'SH'
#!/bin/bash
# srun [options] CMD...: run CMD once here (for each node, it is the same machine).
while [[ "${1:-}" == -* ]]; do shift; done
echo "srun $*" >>"$FAKE_LOG"
"$@"
SH
cat >"$FAKE/mpirun" <<'SH'
#!/bin/bash
# Records the line, keeps a copy of the rankfile, writes the status file.
echo "mpirun $*" >>"$FAKE_LOG"
prev="" status_file=""
for a in "$@"; do
  [[ "$prev" == --rankfile ]] && cp "$a" "$FAKE_DIR/rankfile.$(date +%s%N)"
  [[ "$prev" == --status-file ]] && status_file="$a"
  prev="$a"
done
cat >/dev/null  # stdin, as mpirun forwards it
if [[ -n "$status_file" && "${FAKE_STATUS:-0}" != none ]]; then
  echo "${FAKE_STATUS:-0}" >"$status_file"
fi
exit 0
SH
chmod +x "$FAKE"/*

# run_sbatch SCRIPT JOBID STATUS: the script as sbatch would run it.
run_sbatch() {
  local script="$1" job="$2" status="$3"
  rm -f "$TMP/fake.log" "$TMP"/rankfile.*
  run_cmd env PATH="$FAKE:$PATH" FAKE_LOG="$TMP/fake.log" FAKE_DIR="$TMP" FAKE_STATUS="$status" \
    SLURM_SUBMIT_DIR="$TMP/submit" SLURM_JOB_ID="$job" SLURM_NTASKS=8 SLURM_NNODES=2 \
    SLURM_NTASKS_PER_NODE=4 SLURM_JOB_NODELIST="node[1-2]" GFS="$GFS" GFS_BENCH=/nonexistent \
    GFS_DATA="$TMP/data-$job" GFS_SIZE_MB=1 bash "$ROOT/jobs/slurm/$script"
}

# check_placement: every rankfile the fake mpirun saw puts rank 0 on node1
# and the two chunkservers (ranks 1, 2) on node1 and node2.
check_placement() {
  local rf n=0
  for rf in "$TMP"/rankfile.*; do
    [[ -e "$rf" ]] || fail "mpirun got no --rankfile"
    n=$((n + 1))
    grep -qx 'rank 0=node1 slot=0' "$rf" || fail "master not on node1: $(tr '\n' ';' <"$rf")"
    local cs
    cs="$(sed -n 's/^rank [12]=\([^ ]*\) .*/\1/p' "$rf" | sort | tr '\n' ' ')"
    assert_eq "node1 node2 " "$cs" "one chunkserver per node"
    assert_eq 8 "$(wc -l <"$rf")" "a rankfile line per rank"
  done
  log "placement checked in $n rankfiles"
}

for status in 0 1 none; do
  want="$status"
  [[ "$status" == none ]] && want=3
  run_sbatch producer_consumer.sbatch "4242$want" "$status"
  assert_exit "$want" "producer_consumer.sbatch exits with the job's status ($status)"
  check_placement
  grep -q -- "--status-file $TMP/submit/gfs-pc-4242$want/pc.status" "$TMP/fake.log" ||
    fail "the status file is not per job: $(cat "$TMP/fake.log")"
  grep -q -- "--file /pc/pc-4242$want.log" "$TMP/fake.log" || fail "the job id is not in the file name"
  grep -q -- "--chunkservers 2 --clients 5" "$TMP/fake.log" || fail "K = nodes, C = the rest"
  [[ -f "$TMP/submit/gfs-pc-4242$want/pc.stderr" ]] || fail "no per-job stderr log"
done

for status in 0 1; do
  run_sbatch streaming_read.sbatch "777$status" "$status"
  assert_exit "$status" "streaming_read.sbatch exits with the first failing step's status"
  check_placement
  grep -q -- "--status-file $TMP/submit/gfs-read-777$status/mkdir.status" "$TMP/fake.log" ||
    fail "the mkdir step has no status file of its own"
  if [[ "$status" == 0 ]]; then
    for step in put get stat rm; do
      grep -q -- "--status-file $TMP/submit/gfs-read-777$status/$step.status" "$TMP/fake.log" ||
        fail "step $step did not run with a status file of its own"
    done
  fi
done
pass
