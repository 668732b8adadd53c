#!/bin/bash
# SIGKILL one chunkserver (K = 4, R = 3) during the 8-producer record-append
# job: the job still sees every record exactly once and intact, and a later
# job (the killed server's directory back, with copies that missed appends)
# reads every record back. Two kill moments (one at GFS_TEST_SCALE < 1... both
# always: the job is short).
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
M="$(awk -v s="$SCALE" 'BEGIN { m = int(6000 * s); if (m < 1000) m = 1000; print m }')"
run=0
for point in "2 1" "6 3"; do
  read -r mb victim <<<"$point"
  run=$((run + 1))
  DATA="$TMP/data$run"
  GLOBALS=(--chunk-size 4M --replication 3 --chunkservers 4 --clients 9 --heartbeat-ms 200
    --timeout-ms 2000 --lease-seconds 5)
  run_gfs mkdir /pc
  assert_ok "mkdir"
  bg_start "$GFS" --data-dir "$DATA" "${GLOBALS[@]}" producer-consumer --file /pc/log \
    --producers 8 --records "$M" --min-size 100 --max-size 16384 --seed "$run" --json
  pid="$(wait_rank_pid "$victim")"
  stored() { find "$DATA" -name '*.chunk' -printf '%s\n' | awk '{ s += $1 } END { print int(s / 1048576) }'; }
  reached() { [[ "$(stored)" -ge "$mb" ]] || ! bg_running; }
  wait_for 120 reached || fail "the job never stored $mb MiB"
  bg_running || fail "the job ended before the kill point"
  kill -9 "$pid"
  log "run $run: SIGKILL chunkserver rank $victim (pid $pid) at $(stored) MiB stored"
  bg_wait
  assert_ok "producer-consumer with a chunkserver killed (run $run)"
  echo "$OUT"
  assert_eq $((8 * M)) "$(json_get records <<<"$OUT")" "records read back once each (run $run)"
  assert_eq 0 "$(json_get missing <<<"$OUT")" "missing records (run $run)"
  assert_eq 0 "$(json_get corrupt <<<"$OUT")" "corrupt records (run $run)"
  assert_eq True "$(json_get ok <<<"$OUT")" "job verdict (run $run)"
  # A later job with every chunkserver: all records, once each.
  GLOBALS=(--chunkservers 4 --replication 3)
  for i in 1 2; do
    run_gfs records /pc/log
    assert_ok "records (run $run, read $i)"
    assert_eq $((8 * M)) "$(awk '{print $1, $2}' <<<"$OUT" | sort -u | grep -c .)" \
      "distinct (producer, seq) after the restart (run $run, read $i)"
  done
done

# The whole job SIGKILLed while producers append short-circuit (R = 1, the
# chunkserver on their host: ranges of the chunk's file are always being
# written), each producer fsyncing every 128 records. The next job cuts each
# data file back to what its checksums cover: no replica is corrupt, and at
# least every record fsynced reads back, intact and once.
DATA="$TMP/data-local"
GLOBALS=(--chunk-size 4M --replication 1 --chunkservers 1 --clients 9)
run_gfs mkdir /pc
assert_ok "mkdir (short-circuit run)"
bg_start "$GFS" --data-dir "$DATA" "${GLOBALS[@]}" producer-consumer --file /pc/log \
  --producers 8 --records "$((M * 4))" --min-size 100 --max-size 16384 --seed 5 --sync-every 128 \
  --json
stored() { find "$DATA" -name '*.chunk' -printf '%s\n' | awk '{ s += $1 } END { print int(s / 1048576) }'; }
reached() { [[ "$(stored)" -ge 16 ]] || ! bg_running; }
wait_for 120 reached || fail "the short-circuit job never stored 16 MiB"
bg_running || fail "the short-circuit job ended before the kill point"
kill_job "$DATA"
wait "$BG_PID" 2>/dev/null || true
assert_no_leftovers "$DATA"
GLOBALS=(--chunkservers 1 --replication 1 --stats-dir "$TMP/s-cut")
run_gfs fsck --verify
assert_ok "fsck --verify after a kill during short-circuit appends"
assert_contains "$OUT" "status: healthy"
log "bytes cut at open: $(python3 "$STATS_PY" sum "$TMP/s-cut" chunkserver tail_bytes_cut_at_open)"
run_gfs records /pc/log
assert_ok "records after a kill during short-circuit appends"
n="$(grep -c . <<<"$OUT" || true)"
# 16 MiB were stored before the kill: every producer (~1 MiB between fsyncs) had fsynced.
log "$n records after the kill"
[[ "$n" -ge 512 ]] || fail "only $n records survived the kill"
assert_eq "$n" "$(awk '{print $1, $2}' <<<"$OUT" | sort -u | grep -c .)" "records read once each"
pass
