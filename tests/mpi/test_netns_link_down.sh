#!/bin/bash
# A host's link cut during a put: four test hosts (jobs/netns-cluster), R = 3,
# one chunkserver per host; 6 s into a put from h0, h3's link to the bridge
# goes down (its ranks and its Open MPI daemon live on, unreachable). The
# job must end (no hang: the master takes h3's chunkserver as dead, the
# client's chain goes round it; Open MPI 4.1's mpirun then waits for h3's
# daemon, and the launcher stops it once the job has reported its status).
# Either the put was acknowledged (exit 0) and the file reads back
# identical once the link is up again, or it failed with one line and left
# no file. With the link back, fsck ends healthy with no stale replica.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

NC="$(cd "$HERE/../.." && pwd)/jobs/netns-cluster"
export GFS_NETNS_NAME="l$$"
export GFS_NETNS_STATE="$TMP/state"
export GFS_NETNS_DATA="$TMP/hosts"
export GFS_BIN="$GFS"
HOSTS_DIR="$GFS_NETNS_DATA/$GFS_NETNS_NAME"
trap '_rc=$?; "$NC" down >/dev/null 2>&1 || true; (exit $_rc); _cleanup' EXIT

run_cmd "$NC" up 4 --rate 40mbit
if ((RC != 0)); then
  fail "cannot create the test hosts (network namespaces): $(grep -m1 . "$ERR_FILE")"
fi
OPTS=(--replication 3 --chunk-size 1M --heartbeat-ms 200 --timeout-ms 2000 --lease-seconds 5)
ncgfs() { run_cmd "$NC" gfs "${OPTS[@]}" "$@"; }

MB="$(scaled_mb 40)"
((MB >= 16)) || MB=16
rand_file "$TMP/in.bin" $((MB * 1048576))
bg_start "$NC" gfs "${OPTS[@]}" put "$TMP/in.bin" /a.bin
sleep 6
bg_running || fail "the put ended before the link was cut"
ip -n "$GFS_NETNS_NAME-br" link set v3 down || fail "cannot take h3's link down"
log "h3's link is down"
bg_wait
ip -n "$GFS_NETNS_NAME-br" link set v3 up || fail "cannot bring h3's link back"
log "the put ended with exit $RC after the link was cut: $(grep -c . "$ERR_FILE") stderr lines"
grep -E "stopping it|missed its heartbeats" "$ERR_FILE" | sed 's/^/    /' || true
if ((RC == 0)); then
  ncgfs get /a.bin "$TMP/back.bin"
  assert_ok "get with the link back"
  assert_same_file "$TMP/in.bin" "$TMP/back.bin" "the acknowledged put"
else
  grep -q "^gfs: put:" "$ERR_FILE" || fail "the failed put did not say why"
  ncgfs stat /a.bin
  assert_fails "a failed put left no file"
fi
ncgfs fsck --wait 60 --json /
assert_ok "fsck with h3's link back"
assert_eq 0 "$(json_get total stale_replicas <"$OUT_FILE")" "stale replicas left"
assert_no_leftovers "$HOSTS_DIR"
pass
