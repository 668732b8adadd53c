#!/bin/bash
# A client rank that dies does not hang the job (one machine): the master
# sees its process end and stops waiting for it.
# 1. The put's only client is SIGKILLed mid-put: the job ends (exit 3: no
#    status was reported), well before the test's timeout, and the file is
#    not there (all or nothing); the store is healthy afterwards.
# 2. One of three producers is SIGKILLed during the producer-consumer job:
#    the job ends, exits 1 with one line naming the lost producer, and the
#    consumer found every record that producer had acknowledged, and every
#    record of the others exactly once.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
GLOBALS=(--chunk-size 1M --replication 2 --chunkservers 2 --heartbeat-ms 200 --timeout-ms 2000
  --lease-seconds 5)

# 1. The put's client lost (rank 3: master 0, chunkservers 1-2, client 3).
mkfifo "$TMP/feed"
# A slow feed, so that the put is still running when its client is killed.
(for i in $(seq 1 600); do head -c 65536 /dev/urandom; sleep 0.05; done >"$TMP/feed") &
FEEDER=$!
bg_start "$GFS" --data-dir "$DATA" "${GLOBALS[@]}" put "$TMP/feed" /lost.bin
pid="$(wait_rank_pid 3)"
stored() { find "$DATA" -name '*.chunk' -printf '%s\n' | awk '{ s += $1 } END { print int(s / 1048576) }'; }
reached() { [[ "$(stored)" -ge 2 ]] || ! bg_running; }
wait_for 120 reached || fail "the put never stored 2 MiB"
bg_running || fail "the put ended before its client was killed"
kill -9 "$pid"
log "SIGKILL the put's client, rank 3 (pid $pid), at $(stored) MiB stored"
bg_wait
kill "$FEEDER" 2>/dev/null || true
wait "$FEEDER" 2>/dev/null || true
assert_exit 3 "a put whose client was lost"
assert_contains "$ERR" "ended without reporting a status" "the launcher's line"
assert_lt "$ELAPSED" 60 "seconds from the kill to the job's end"
run_gfs stat /lost.bin
assert_fails "the lost put left no file"
run_gfs fsck --json /
assert_ok "fsck after the lost put"

# 2. A producer lost: 3 producers (client ranks 3, 4, 5) and a consumer (6).
M="$(awk -v s="$SCALE" 'BEGIN { m = int(20000 * s); if (m < 4000) m = 4000; print m }')"
run_gfs mkdir /pc
assert_ok "mkdir"
bg_start "$GFS" --data-dir "$DATA" "${GLOBALS[@]}" --clients 4 producer-consumer --file /pc/log \
  --producers 3 --records "$M" --min-size 100 --max-size 16384 --json
pid="$(wait_rank_pid 4)"
start_mb="$(stored)"
reached2() { [[ "$(stored)" -ge $((start_mb + 3)) ]] || ! bg_running; }
wait_for 120 reached2 || fail "the producers never appended 3 MiB"
bg_running || fail "the job ended before the producer was killed"
kill -9 "$pid"
log "SIGKILL producer 1, rank 4 (pid $pid)"
bg_wait
echo "$OUT"
assert_exit 1 "producer-consumer with a producer lost"
assert_contains "$ERR" "producer 1 (rank 4) was lost after" "the lost producer's line"
assert_eq 1 "$(json_get lost_producers <<<"$OUT")" "lost producers"
assert_eq 0 "$(json_get missing <<<"$OUT")" "acknowledged records missing"
assert_eq 0 "$(json_get corrupt <<<"$OUT")" "corrupt records"
assert_eq True "$(json_get ok <<<"$OUT")" "the verdict on the data"
acked="$(json_get lost_acknowledged <<<"$OUT")"
((acked > 0)) || fail "the lost producer had acknowledged no record (killed too early to test)"
records="$(json_get records <<<"$OUT")"
((records >= 2 * M + acked)) || fail "records $records < 2 x $M + $acked acknowledged by the lost one"
assert_eq "$(json_get expected <<<"$OUT")" "$records" "records against expected"
# The log reads back in a later job: every record intact.
run_gfs records /pc/log
assert_ok "records of the log in a later job"
run_gfs fsck --json /
assert_ok "fsck at the end"
assert_no_leftovers "$DATA"
pass
