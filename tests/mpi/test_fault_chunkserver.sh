#!/bin/bash
# SIGKILL one chunkserver rank in the middle of a large write (R = 3, K = 4):
# the write succeeds, the file reads back identical, re-replication restores
# R good replicas in the same job; a later job in which the killed server's
# directory is back never serves its stale copy. Several kill points and
# victims (3 at full size, 2 at GFS_TEST_SCALE < 1).
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
PROG="$GFS_TEST_PROGRAMS/fault_client"
MB="$(scaled_mb 200)"
BYTES=$((MB * 1048576))
# kill point (fraction of the bytes acknowledged) and victim (chunkserver rank 1..4)
if awk -v s="$SCALE" 'BEGIN { exit !(s < 1) }'; then
  POINTS=("0.3 2" "0.7 4")
else
  POINTS=("0.25 1" "0.5 3" "0.8 4")
fi
run=0
for point in "${POINTS[@]}"; do
  read -r frac victim <<<"$point"
  run=$((run + 1))
  DATA="$TMP/data$run"
  W="$TMP/work$run"
  mkdir -p "$W"
  at=$(awk -v b="$BYTES" -v f="$frac" 'BEGIN { printf "%d", b * f }')
  log "run $run: ${MB} MiB, kill chunkserver rank $victim after $at bytes"
  # 1 master + 4 chunkservers + 1 client; 8 MiB chunks; a dead server is
  # noticed after 5 heartbeats + one request deadline (~3 s).
  mpirun_prog_bg 6 "$PROG" put "$DATA" "$W" cs=4 r=3 chunk=8388608 hb=200 timeout=2000 lease=5 \
    bytes="$BYTES" seed="$run" local="$TMP/in.bin"
  pid="$(wait_rank_pid "$victim")"
  reached() { [[ "$(cat "$W/progress" 2>/dev/null || echo 0)" -ge "$at" ]] || ! bg_running; }
  wait_for 240 reached || fail "the put never reached $at bytes"
  bg_running || fail "the job ended before the kill point: $(cat "$W/result" 2>/dev/null)"
  kill -9 "$pid"
  log "SIGKILL chunkserver rank $victim (pid $pid) at $(cat "$W/progress") bytes"
  bg_wait
  [[ -s "$W/result" ]] || fail "no result written: $ERR"
  log "result: $(cat "$W/result")"
  [[ "$(cat "$W/result")" == OK* ]] || fail "run $run: $(cat "$W/result")"
  assert_no_leftovers "$DATA"
  # A new job with all four chunkservers (the killed one's directory is back,
  # holding a copy that missed writes): the bytes are the written ones.
  GLOBALS=(--chunkservers 4 --replication 3)
  run_gfs get /big "$TMP/out.bin"
  assert_ok "get after the kill (run $run)"
  assert_same_file "$TMP/in.bin" "$TMP/out.bin" "run $run: get returns the written bytes"
  run_gfs --heartbeat-ms 200 fsck --wait 60 --json
  assert_ok "fsck after the kill (run $run)"
  assert_eq healthy "$(json_get status <<<"$OUT")" "fsck status (run $run)"
  # Healthy means R good replicas; a stale copy is deleted once they exist,
  # on a later heartbeat, so fsck may still count it. Ask again until the
  # master knows of no stale replica (each job's heartbeats delete more).
  stale="$(json_get total stale_replicas <<<"$OUT")"
  for _ in $(seq 1 20); do
    [[ "$stale" == 0 ]] && break
    run_gfs --heartbeat-ms 200 fsck --wait 60 --json
    assert_ok "fsck while stale copies are deleted (run $run)"
    stale="$(json_get total stale_replicas <<<"$OUT")"
  done
  assert_eq 0 "$stale" "stale replicas left after the repair (run $run)"
  # On disk, once the stale copies are gone: every chunk has at least R = 3
  # replicas (a copy the killed server holds of a chunk it had complete is
  # still current, beside the re-replicated one), each exactly the bytes
  # written there.
  declare -A seen=()
  for f in "$DATA"/chunkserver-*/chunks/*.chunk; do
    h="$(basename "$f" .chunk)"
    seen[$h]=$((${seen[$h]:-0} + 1))
  done
  want_chunks=$(((BYTES + 8388607) / 8388608))
  assert_eq "$want_chunks" "${#seen[@]}" "chunks on disk (run $run)"
  for h in "${!seen[@]}"; do
    [[ "${seen[$h]}" -ge 3 ]] || fail "run $run: chunk $h has ${seen[$h]} replicas on disk"
    k=$((16#$h - 1))
    want="$(dd if="$TMP/in.bin" bs=8388608 skip=$k count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
    for f in "$DATA"/chunkserver-*/chunks/"$h".chunk; do
      assert_eq "$want" "$(sha256sum <"$f" | cut -d' ' -f1)" "run $run: replica $f"
    done
  done
  unset seen
  rm -rf "$DATA" "$TMP/out.bin"
done
pass
