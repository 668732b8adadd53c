#!/bin/bash
# A host is a failure unit: four test hosts (jobs/netns-cluster), R = 3, one
# chunkserver per host (ranks 1..4 on h0..h3). Host h3 holds only its
# chunkserver (the master, the clients and mpirun run on h0..h2); its ranks
# are SIGKILLed (its Open MPI daemon lives on) during a put and, in another
# job, during record appends. Each job finishes and loses nothing it
# acknowledged; a later job on h0..h2 alone restores R = 3 on those hosts.
# Then h3 comes back: its replicas that missed mutations are stale, and a
# reader on h3 (short-circuit reads on: it would read h3's files first)
# still gets the current bytes of every file; fsck ends healthy with no
# stale replica left. Creating the namespaces must work here: if it does
# not, the test fails with the reason.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

NC="$(cd "$HERE/../.." && pwd)/jobs/netns-cluster"
export GFS_NETNS_NAME="f$$"
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
# The first three hosts alone (a job without h3).
head -3 "$GFS_NETNS_STATE/$GFS_NETNS_NAME/hostfile" >"$TMP/hosts3"

OPTS=(--replication 3 --chunk-size 1M --heartbeat-ms 200 --timeout-ms 2000 --lease-seconds 5)
ncgfs() { run_cmd "$NC" gfs "${OPTS[@]}" "$@"; }
ncgfs3() { run_cmd "$NC" gfs "${OPTS[@]}" --hostfile "$TMP/hosts3" --chunkservers 3 "$@"; }

# h3_mb: MiB of chunk data in h3's directory.
h3_mb() { find "$HOSTS_DIR/h3" -name '*.chunk' -printf '%s\n' | awk '{ s += $1 } END { print int(s / 1048576) }'; }
# kill_h3 WORLD MB: once h3 holds MB MiB, SIGKILL every rank of the job
# (ranks 0..WORLD-1) that runs on h3, found by the host name of its UTS
# namespace; that must be the chunkserver alone (rank 4). Fails if the job
# ended first.
kill_h3() {
  local world="$1" mb="$2" r pid victims=()
  reached() { [[ "$(h3_mb)" -ge "$1" ]] || ! bg_running; }
  wait_for 120 reached "$mb" || fail "h3 never stored $mb MiB"
  for ((r = 0; r < world; r++)); do
    pid="$(wait_rank_pid "$r" "$LOCAL")"
    if [[ "$(nsenter -t "$pid" -u hostname)" == h3 ]]; then victims+=("$r:$pid"); fi
  done
  [[ "${victims[*]}" == 4:* ]] || fail "ranks on h3: ${victims[*]} (want the chunkserver, rank 4, alone)"
  bg_running || fail "the job ended before h3 was lost"
  kill -9 "${victims[0]#*:}"
  log "h3 lost: SIGKILL its only rank, chunkserver 4 (pid ${victims[0]#*:}), at $(h3_mb) MiB on h3"
}

# 1. During a put.
MB="$(scaled_mb 48)"
((MB >= 16)) || MB=16
SIZE=$((MB * 1048576))
rand_file "$TMP/in.bin" "$SIZE"
bg_start "$NC" gfs "${OPTS[@]}" put "$TMP/in.bin" /a.bin
kill_h3 5 2
bg_wait
assert_ok "put with h3 lost"

# 2. During record appends: 2 producers (on h0..h2) and a consumer.
M="$(awk -v s="$SCALE" 'BEGIN { m = int(4000 * s); if (m < 1000) m = 1000; print m }')"
ncgfs mkdir /pc
assert_ok "mkdir"
bg_start "$NC" gfs "${OPTS[@]}" --clients 3 producer-consumer --file /pc/log --producers 2 \
  --records "$M" --min-size 100 --max-size 16384 --json
kill_h3 7 $(($(h3_mb) + 2))
bg_wait
assert_ok "producer-consumer with h3 lost"
assert_eq $((2 * M)) "$(json_get records <<<"$OUT")" "records read back once each"
assert_eq 0 "$(json_get missing <<<"$OUT")" "missing records"
assert_eq True "$(json_get ok <<<"$OUT")" "job verdict"

# 3. A job on h0..h2 alone: R = 3 restored there (every chunk on the three
# hosts), the put's bytes intact, the log kept as a reference.
ncgfs3 fsck --wait 60 --json /
assert_ok "fsck on h0..h2: every chunk back to 3 replicas"
python3 - "$OUT_FILE" <<'EOF' || fail "replication not restored on h0..h2"
import json, sys
r = json.load(open(sys.argv[1]))
n = 0
for f in r["files"]:
    for c in f["chunk_list"]:
        hosts = sorted(x["host"] for x in c["replicas"])
        if hosts != ["h0", "h1", "h2"]:
            sys.exit("%s chunk %s on %s" % (f["path"], c["index"], hosts))
        n += 1
print("%d chunks on h0, h1 and h2" % n)
EOF
ncgfs3 get /a.bin "$TMP/a3.bin"
assert_ok "get on h0..h2"
assert_same_file "$TMP/in.bin" "$TMP/a3.bin" "the put's file without h3"
ncgfs3 get /pc/log "$TMP/log3.bin"
assert_ok "get of the log on h0..h2"

# 4. h3 back: a reader on h3 reads current bytes only (its stale replicas
# are never served), and fsck ends healthy with no stale replica.
run_cmd "$NC" gfs --on h3 "${OPTS[@]}" --stats-dir "$TMP/s4" get /a.bin "$TMP/a4.bin"
assert_ok "get on h3"
assert_same_file "$TMP/in.bin" "$TMP/a4.bin" "the put's file read on h3"
run_cmd "$NC" gfs --on h3 "${OPTS[@]}" get /pc/log "$TMP/log4.bin"
assert_ok "get of the log on h3"
assert_same_file "$TMP/log3.bin" "$TMP/log4.bin" "the log read on h3"
ncgfs fsck --wait 60 --json /
assert_ok "fsck with h3 back"
assert_eq 0 "$(json_get total stale_replicas <"$OUT_FILE")" "stale replicas left"
assert_no_leftovers "$HOSTS_DIR"

pass
