#!/bin/bash
# A lost host that ran a client: four test hosts (jobs/netns-cluster), R = 3,
# one chunkserver per host (ranks 1..4 on h0..h3). Every rank of h3 is
# SIGKILLed (its Open MPI daemon lives on), so no rank is left there to see
# the client's process end: the master takes the client as lost with its
# host once h3's chunkserver has stopped and the client has been silent since.
# 1. During a put whose client runs on h3: the job ends (exit 3, no status
#    was reported) instead of hanging, and the file is not there.
# 2. During record appends with a producer on h3: the job ends (exit 1, one
#    line naming the lost producer); every record that producer had
#    acknowledged is in the file, the others' records exactly once.
# 3. A job on h0..h2 restores R = 3 there and reads the log; with h3 back, a
#    reader on h3 gets the same bytes and no stale replica is left.
# Creating the namespaces must work here: if it does not, the test fails
# with the reason.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

NC="$(cd "$HERE/../.." && pwd)/jobs/netns-cluster"
export GFS_NETNS_NAME="c$$"
export GFS_NETNS_STATE="$TMP/state"
export GFS_NETNS_DATA="$TMP/hosts"
export GFS_BIN="$GFS"
HOSTS_DIR="$GFS_NETNS_DATA/$GFS_NETNS_NAME"
LOCAL="$GFS_NETNS_DATA/$GFS_NETNS_NAME/local"
trap '_rc=$?; "$NC" down >/dev/null 2>&1 || true; (exit $_rc); _cleanup' EXIT

# Links limited to 40 Mbit/s, so that the jobs last long enough to lose h3
# in the middle of them.
run_cmd "$NC" up 4 --rate 40mbit
if ((RC != 0)); then
  fail "cannot create the test hosts (network namespaces): $(grep -m1 . "$ERR_FILE")"
fi
head -3 "$GFS_NETNS_STATE/$GFS_NETNS_NAME/hostfile" >"$TMP/hosts3"

OPTS=(--replication 3 --chunk-size 1M --heartbeat-ms 200 --timeout-ms 2000 --lease-seconds 5)
ncgfs() { run_cmd "$NC" gfs "${OPTS[@]}" "$@"; }
ncgfs3() { run_cmd "$NC" gfs "${OPTS[@]}" --hostfile "$TMP/hosts3" --chunkservers 3 "$@"; }

# h3_mb: MiB of chunk data in h3's directory.
h3_mb() { find "$HOSTS_DIR/h3" -name '*.chunk' -printf '%s\n' | awk '{ s += $1 } END { print int(s / 1048576) }'; }
# lose_h3 WORLD MB WANT: once h3 holds MB MiB, SIGKILL every rank of the job
# (ranks 0..WORLD-1) that runs on h3, found by the host name of its UTS
# namespace; they must be the ranks WANT ("4 5": the chunkserver and a
# client). Fails if the job ended first.
lose_h3() {
  local world="$1" mb="$2" want="$3" r pid ranks=() pids=()
  reached() { [[ "$(h3_mb)" -ge "$1" ]] || ! bg_running; }
  wait_for 120 reached "$mb" || fail "h3 never stored $mb MiB"
  for ((r = 0; r < world; r++)); do
    pid="$(wait_rank_pid "$r" "$LOCAL")"
    if [[ "$(nsenter -t "$pid" -u hostname)" == h3 ]]; then
      ranks+=("$r")
      pids+=("$pid")
    fi
  done
  [[ "${ranks[*]}" == "$want" ]] || fail "ranks on h3: ${ranks[*]} (want $want)"
  bg_running || fail "the job ended before h3 was lost"
  kill -9 "${pids[@]}"
  log "h3 lost: SIGKILL ranks ${ranks[*]} (pids ${pids[*]}) at $(h3_mb) MiB on h3"
}

# A file the lost jobs must leave alone.
rand_file "$TMP/keep.bin" $((3 * 1048576))
ncgfs put "$TMP/keep.bin" /keep.bin
assert_ok "put of the reference file"

# 1. A put whose client runs on h3 (the launcher and mpirun run there too:
# the first client goes where the launcher is). Ranks: master 0 on h0,
# chunkservers 1..4 on h0..h3, the put's client 5 on h3.
MB="$(scaled_mb 48)"
((MB >= 16)) || MB=16
rand_file "$TMP/in.bin" $((MB * 1048576))
bg_start "$NC" gfs --on h3 "${OPTS[@]}" put "$TMP/in.bin" /lost.bin
lose_h3 6 $(($(h3_mb) + 2)) "4 5"
bg_wait
assert_exit 3 "a put whose client's host was lost"
assert_contains "$ERR" "ended without reporting a status" "the launcher's line"
ncgfs stat /lost.bin
assert_fails "the lost put left no file"

# 2. Record appends: 4 producers (client ranks 5..8 on h0..h3) and one
# consumer (rank 9, on h0). Producer 3 (rank 8) is on h3.
M="$(awk -v s="$SCALE" 'BEGIN { m = int(4000 * s); if (m < 1000) m = 1000; print m }')"
ncgfs mkdir /pc
assert_ok "mkdir"
bg_start "$NC" gfs "${OPTS[@]}" --clients 5 producer-consumer --file /pc/log --producers 4 \
  --records "$M" --min-size 100 --max-size 16384 --json
lose_h3 10 $(($(h3_mb) + 2)) "4 8"
bg_wait
echo "$OUT"
assert_exit 1 "producer-consumer with a producer's host lost"
assert_contains "$ERR" "producer 3 (rank 8) was lost after" "the lost producer's line"
assert_eq 1 "$(json_get lost_producers <<<"$OUT")" "lost producers"
assert_eq 0 "$(json_get missing <<<"$OUT")" "acknowledged records missing"
assert_eq 0 "$(json_get corrupt <<<"$OUT")" "corrupt records"
assert_eq True "$(json_get ok <<<"$OUT")" "the verdict on the data"
acked="$(json_get lost_acknowledged <<<"$OUT")"
records="$(json_get records <<<"$OUT")"
((records >= 3 * M + acked)) || fail "records $records < 3 x $M + $acked acknowledged by the lost one"

# 3. A job on h0..h2 alone: R = 3 restored there, the files intact.
ncgfs3 fsck --wait 60 --json /
assert_ok "fsck on h0..h2: every chunk back to 3 replicas"
ncgfs3 get /keep.bin "$TMP/keep3.bin"
assert_ok "get of the reference file on h0..h2"
assert_same_file "$TMP/keep.bin" "$TMP/keep3.bin" "the reference file"
ncgfs3 get /pc/log "$TMP/log3.bin"
assert_ok "get of the log on h0..h2"
ncgfs3 records /pc/log
assert_ok "records of the log on h0..h2"

# h3 back: a reader there gets the same bytes; no stale replica is left.
run_cmd "$NC" gfs --on h3 "${OPTS[@]}" get /pc/log "$TMP/log4.bin"
assert_ok "get of the log on h3"
assert_same_file "$TMP/log3.bin" "$TMP/log4.bin" "the log read on h3"
ncgfs fsck --wait 60 --json /
assert_ok "fsck with h3 back"
assert_eq 0 "$(json_get total stale_replicas <"$OUT_FILE")" "stale replicas left"
assert_no_leftovers "$HOSTS_DIR"
pass
