#!/bin/bash
# SIGKILL a whole job (mpirun and every rank) at a random moment during a
# stream of metadata mutations and fsynced writes; a second job on the same
# data directory finds every acknowledged mutation and every fsynced byte,
# and every chunk with R good replicas (fsck clean). Several seeds and kill
# moments (3 at full size, 2 at GFS_TEST_SCALE < 1).
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
PROG="$GFS_TEST_PROGRAMS/fault_client"
# 1 MiB chunks, 1 s leases (a new lease, with a version bump, almost every
# write), a dead server noticed after ~3 s.
OPTS=(cs=3 r=3 chunk=1048576 hb=200 timeout=2000 lease=1)
if awk -v s="$SCALE" 'BEGIN { exit !(s < 1) }'; then RUNS=(1 2); else RUNS=(1 2 3); fi
acks() { grep -c '^A$' "$W/ops.log" 2>/dev/null || echo 0; }
for run in "${RUNS[@]}"; do
  DATA="$TMP/data$run"
  W="$TMP/work$run"
  mkdir -p "$W"
  # The kill: after a seeded number of acknowledged operations plus a seeded
  # delay, so it lands in different phases of different operations.
  min_acks=$((20 + (run * 37) % 50))
  RANDOM=$((run * 7919))
  delay="$(printf '0.%03d' $((RANDOM % 1000)))"
  mpirun_prog_bg 5 "$PROG" crash "$DATA" "$W" "${OPTS[@]}" seed="$run"
  enough() { [[ "$(acks)" -ge "$min_acks" ]] || ! bg_running; }
  wait_for 120 enough || fail "only $(acks) operations acknowledged in 120 s"
  bg_running || fail "the job ended by itself: $(cat "$W/result" 2>/dev/null) $(cat "$ERR_FILE")"
  sleep "$delay"
  kill_job "$DATA"
  wait "$BG_PID" 2>/dev/null || true
  assert_no_leftovers "$DATA"
  log "run $run: killed after $(acks) acknowledged operations (+${delay}s); in flight: $(grep '^B ' "$W/ops.log" | tail -1)"
  grep -q '^F ' "$W/ops.log" && fail "an operation failed before the kill: $(grep -B1 '^F ' "$W/ops.log" | head -2)"
  # The second job: everything acknowledged is there.
  run_cmd "${MPIRUN_RECOVERY[@]}" -np 5 "$PROG" check "$DATA" "$W" "${OPTS[@]}" wait=60
  [[ -s "$W/result" ]] || fail "no result from the check job: $ERR"
  log "check: $(cat "$W/result")"
  [[ "$(cat "$W/result")" == OK* ]] || fail "run $run: $(cat "$W/result")"
  GLOBALS=(--chunk-size 1M)
  run_gfs fsck
  assert_ok "fsck after the crash (run $run)"
  assert_contains "$OUT" "status: healthy"
done
pass
