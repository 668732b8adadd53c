#!/bin/bash
# Shadow masters under faults (--shadows 2: rank 0 the master, ranks 1-2
# shadows, ranks 3-6 chunkservers, rank 7 the client).
#  1. SIGKILL the master during a put, at two points: a shadow takes over
#     (exactly one takeover in the stats), the put and the mkdir / write /
#     rename after the kill succeed in the same job, a later job with and
#     without shadows reads identical bytes, fsck is healthy. Once more
#     through the `gfs` launcher: `gfs put` exits 0 with its master killed.
#  2. SIGSTOP the master until a shadow has taken over, then SIGCONT: the old
#     master counts itself deposed, acknowledges nothing that is lost, and a
#     later job starts from the new master's copy.
#  3. Shadows serve reads: the master stopped for less than the election
#     timeout while the client stats and lists; the calls keep being
#     answered, by a shadow (request counters), and nobody takes over.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
PROG="$GFS_TEST_PROGRAMS/fault_client"
MB="$(scaled_mb 256)"
BYTES=$((MB * 1048576))
NP=8
# 8 MiB chunks; a silent master is replaced after 5 heartbeats (1 s).
OPTS=(cs=4 r=3 shadows=2 chunk=8388608 hb=200 timeout=10000 lease=5)

# counter_sum DIR NAME [RANKS...]: the sum of a counter over the rank-*.json
# files of a stats directory (all ranks, or the ones named).
counter_sum() {
  python3 - "$@" <<'PY'
import glob, json, os, sys
d, name, want = sys.argv[1], sys.argv[2], set(int(r) for r in sys.argv[3:])
total = 0
for f in glob.glob(os.path.join(d, "rank-*.json")):
    st = json.load(open(f))
    if not want or int(st["rank"]) in want:
        total += int(st.get("counters", {}).get(name, 0))
print(total)
PY
}

# verify_later RUN: later jobs, one with shadows and one without, find /big,
# /after/moved and /after as written and every chunk with R good replicas
# (fault_client verify); the job with shadows starts every member from the
# most advanced copy, which a killed rank 0 does not hold (a deposed one
# caught up as a shadow before the job ended).
verify_later() {
  local run="$1" sh
  for sh in 2 0; do
    rm -f "$W/result"
    run_cmd "${MPIRUN_RECOVERY[@]}" -np $((NP - 2 + sh)) "$PROG" verify "$DATA" "$W" cs=4 r=3 \
      shadows=$sh hb=200 bytes="$BYTES" seed="$run"
    [[ -s "$W/result" ]] || fail "no result from the later job (shadows=$sh): $ERR"
    [[ "$(cat "$W/result")" == OK* ]] || fail "run $run, later job (shadows=$sh): $(cat "$W/result")"
    if ((sh == 2 && run != 4)); then
      assert_contains "$ERR" "master rank 0: copied the metadata from rank" "run $run: later job"
    fi
  done
}

# ---- 1. the master SIGKILLed during a put ----
# The client pauses after the write that reaches the kill point (the file
# open, more to write). Run 1: the master dies before the put goes on; run 2:
# it dies while the next write is in flight.
run=0
for frac in 0.3 0.5; do
  run=$((run + 1))
  DATA="$TMP/data$run"
  W="$TMP/work$run"
  S="$TMP/stats$run"
  mkdir -p "$W"
  at=$(awk -v b="$BYTES" -v f="$frac" 'BEGIN { printf "%d", b * f }')
  log "run $run: ${MB} MiB, SIGKILL the master after $at bytes"
  mpirun_prog_bg "$NP" "$PROG" failover "$DATA" "$W" "${OPTS[@]}" stats="$S" bytes="$BYTES" \
    seed="$run" pause_at="$at"
  pid="$(wait_rank_pid 0)"
  paused() { [[ -s "$W/paused" ]] || ! bg_running; }
  wait_for 240 paused || fail "the put never reached $at bytes"
  bg_running || fail "the job ended before the kill point: $(cat "$W/result" 2>/dev/null)"
  if ((run == 1)); then
    kill -9 "$pid"
    : >"$W/go"
  else
    : >"$W/go"
    sleep 0.05
    kill -9 "$pid"
  fi
  done_at="$(cat "$W/progress")"
  log "SIGKILL master rank 0 (pid $pid) at $done_at bytes written"
  : >"$W/killed"
  bg_wait
  [[ -s "$W/result" ]] || fail "no result written: $ERR"
  log "result: $(cat "$W/result")"
  [[ "$(cat "$W/result")" == OK* ]] || fail "run $run: $(cat "$W/result"); stderr: $ERR"
  [[ "$done_at" -lt "$BYTES" ]] || fail "run $run: the put was not in progress at the kill"
  assert_contains "$ERR" "took over from rank 0" "run $run: a shadow took over"
  assert_no_leftovers "$DATA"
  assert_eq 1 "$(counter_sum "$S" takeovers)" "run $run: takeovers"
  assert_eq 1 "$(counter_sum "$S" takeovers 1 2)" "run $run: takeovers by a shadow"
  [[ "$(counter_sum "$S" master_failovers 7)" -ge 1 || "$(counter_sum "$S" new_masters 7)" -ge 1 ]] ||
    fail "run $run: the client never switched masters"
  verify_later "$run"
  rm -rf "$DATA"
done

# Through the launcher: its exit status says the put succeeded.
run=3
DATA="$TMP/data$run"
GLOBALS=(--shadows 2 --chunkservers 4 --replication 3 --chunk-size 8M --heartbeat-ms 200
  --timeout-ms 10000)
rand_file "$TMP/in3.bin" "$BYTES"
bg_start "$GFS" --data-dir "$DATA" "${GLOBALS[@]}" --stats-dir "$TMP/stats3" put "$TMP/in3.bin" /big
pid="$(wait_rank_pid 0)"
stored() { find "$DATA" -name '*.chunk' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
reached() { [[ "$(stored)" -ge "$BYTES" ]] || ! bg_running; }
wait_for 240 reached || fail "the put never stored $BYTES bytes"
bg_running || fail "the put ended before the kill point"
kill -9 "$pid"
log "run 3: SIGKILL master rank 0 (pid $pid) at $(stored) bytes of chunks stored"
bg_wait
assert_ok "gfs put with the master killed"
assert_contains "$ERR" "took over from rank 0" "run 3: a shadow took over"
assert_eq 1 "$(counter_sum "$TMP/stats3" takeovers)" "run 3: takeovers"
GLOBALS=(--chunkservers 4 --replication 3)
run_gfs get /big "$TMP/out.bin"
assert_ok "get after the launcher run"
assert_same_file "$TMP/in3.bin" "$TMP/out.bin" "run 3: get in a later job"
rm -rf "$DATA"

# ---- 2. the master stopped until it is deposed ----
run=4
DATA="$TMP/data$run"
W="$TMP/work$run"
S="$TMP/stats$run"
mkdir -p "$W"
at=$((BYTES / 2))
mpirun_prog_bg "$NP" "$PROG" failover "$DATA" "$W" "${OPTS[@]}" stats="$S" bytes="$BYTES" \
  seed="$run" pause_at="$at"
pid="$(wait_rank_pid 0)"
paused() { [[ -s "$W/paused" ]] || ! bg_running; }
wait_for 240 paused || fail "the put never reached $at bytes"
bg_running || fail "the job ended before the stop point: $(cat "$W/result" 2>/dev/null)"
kill -STOP "$pid"
: >"$W/go"
log "run 4: SIGSTOP master rank 0 (pid $pid) at $(cat "$W/progress") bytes"
took_over() { grep -q "took over from rank 0" "$ERR_FILE" || ! bg_running; }
if ! wait_for 60 took_over; then
  kill -CONT "$pid"
  fail "no shadow took over from the stopped master"
fi
kill -CONT "$pid"
log "run 4: SIGCONT rank 0 after the takeover"
: >"$W/killed"
bg_wait
[[ -s "$W/result" ]] || fail "no result written: $ERR"
log "result: $(cat "$W/result")"
[[ "$(cat "$W/result")" == OK* ]] || fail "run $run: $(cat "$W/result"); stderr: $ERR"
assert_contains "$ERR" "master rank 0: deposed" "run 4: the old master stepped down"
assert_no_leftovers "$DATA"
assert_eq 1 "$(counter_sum "$S" deposed 0)" "run 4: rank 0 deposed"
assert_eq 1 "$(counter_sum "$S" takeovers 1 2)" "run 4: takeovers by a shadow"
log "run 4: orders of an old epoch refused: chunkservers $(counter_sum "$S" stale_epoch_refused 3 4 5 6)," \
  "master group $(counter_sum "$S" stale_epoch_refused 0 1 2)"
verify_later 4
rm -rf "$DATA"

# ---- 3. shadows answer stat and list while the master is stopped ----
# Heartbeat 1.5 s: a shadow stands for election 7.5 s after it last heard the
# master (6 s after the stop at the earliest); a read goes to a shadow after
# 2 heartbeats (3 s). The master stays stopped 4.5 s.
run=5
DATA="$TMP/data$run"
W="$TMP/work$run"
S="$TMP/stats$run"
mkdir -p "$W"
mpirun_prog_bg "$NP" "$PROG" reads "$DATA" "$W" cs=4 r=3 shadows=2 hb=1500 timeout=30000 \
  stats="$S"
pid="$(wait_rank_pid 0)"
going() { [[ "$(cat "$W/progress" 2>/dev/null || echo 0)" -ge 10 ]] || ! bg_running; }
wait_for 120 going || fail "the reads never started"
bg_running || fail "the reads job ended early: $(cat "$W/result" 2>/dev/null)"
kill -STOP "$pid"
n0="$(cat "$W/progress")"
sleep 4.5
n1="$(cat "$W/progress")"
kill -CONT "$pid"
log "run 5: rank 0 stopped 4.5 s; calls answered meanwhile: $((n1 - n0))"
sleep 1
: >"$W/done"
bg_wait
[[ -s "$W/result" ]] || fail "no result written: $ERR"
log "result: $(cat "$W/result")"
[[ "$(cat "$W/result")" == OK* ]] || fail "run $run: $(cat "$W/result"); stderr: $ERR"
[[ "$n1" -gt "$n0" ]] || fail "no stat or list was answered while the master was stopped"
shadow_reads=$(($(counter_sum "$S" req_stat 1 2) + $(counter_sum "$S" req_list 1 2)))
log "run 5: stat+list served by shadows: $shadow_reads, by the master:" \
  "$(($(counter_sum "$S" req_stat 0) + $(counter_sum "$S" req_list 0)))," \
  "client answered_by_shadow $(counter_sum "$S" answered_by_shadow 7)"
[[ "$shadow_reads" -ge 1 ]] || fail "the shadows served no stat or list"
[[ "$(counter_sum "$S" answered_by_shadow 7)" -ge 1 ]] || fail "no answer came from a shadow"
[[ "$(counter_sum "$S" req_stat 0)" -ge 5 ]] || fail "the master served no stat before the stop"
assert_eq 0 "$(counter_sum "$S" takeovers)" "run 5: no takeover (the stop was short)"
assert_eq 0 "$(counter_sum "$S" elections_started)" "run 5: no election"
assert_eq 0 "$(counter_sum "$S" deposed)" "run 5: nobody deposed"
pass
