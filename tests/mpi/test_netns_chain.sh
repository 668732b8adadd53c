#!/bin/bash
# The chain push across hosts, measured by the per-rank counters: four test
# hosts (jobs/netns-cluster), R = 3, the client on h0. A put of B bytes
# pushes each byte into its chain once: the client sends ~B (not 3B), the
# chunkservers forward ~2B between them, and no host's link carries a pushed
# byte more than once in either direction. The same put with `--push star`
# (the benchmark mode: the client sends each replica its copy) sends ~3B
# from the client and forwards nothing; both files read back identical.
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
trap '_rc=$?; "$NC" down >/dev/null 2>&1 || true; (exit $_rc); _cleanup' EXIT

run_cmd "$NC" up 4
if ((RC != 0)); then
  fail "cannot create the test hosts (network namespaces): $(grep -m1 . "$ERR_FILE")"
fi

ncgfs() { run_cmd "$NC" gfs --replication 3 --chunk-size 8M "$@"; }

MB="$(scaled_mb 96)"
SIZE=$((MB * 1048576))
log "file size $MB MiB ($SIZE bytes), scale $SCALE"
rand_file "$TMP/in.bin" "$SIZE"

# Where each rank runs (jobs/launcher.cc PlaceRanks, launcher on h0): the
# master on h0, chunkserver i on h(i-1), the client on h0. `report` (after the
# puts) checks the chunkservers' part of it.
HOSTS=(h0 h0 h1 h2 h3 h0)

for mode in chain star; do
  ncgfs --push "$mode" --stats-dir "$TMP/s-$mode" put "$TMP/in.bin" "/$mode.bin"
  assert_ok "put with --push $mode"
  python3 "$STATS_PY" links "$TMP/s-$mode" "$SIZE" 3 "$mode" "${HOSTS[@]}" ||
    fail "pushed bytes per host link (--push $mode)"
  ncgfs get "/$mode.bin" "$TMP/out-$mode.bin"
  assert_ok "get of the $mode put"
  assert_same_file "$TMP/in.bin" "$TMP/out-$mode.bin" "get after a put with --push $mode"
done

ncgfs report --json
assert_ok "report"
python3 - "$OUT_FILE" <<'PY' || fail "report: want chunkservers 1..4 on h0..h3"
import json, sys
r = json.load(open(sys.argv[1]))
got = sorted((int(c["rank"]), c["host"]) for c in r["chunkservers"])
if got != [(1, "h0"), (2, "h1"), (3, "h2"), (4, "h3")]:
    sys.exit("chunkservers: %s" % got)
PY

# A record append with the star push (every replica acks its own copy):
# the record is in the file.
printf 'one record\n' >"$TMP/rec"
ncgfs --push star append /log "$TMP/rec"
assert_ok "append with --push star"
ncgfs get /log "$TMP/log.out"
assert_ok "get of the appended file"
grep -q 'one record' "$TMP/log.out" || fail "the appended record is not in /log"
ncgfs --push nonsense ls /
assert_exit 2 "--push nonsense"

pass
