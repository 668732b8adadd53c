#!/bin/bash
# --capacity: each chunkserver stores at most SIZE bytes. New chunks go to
# servers with room; when no R servers have room a write fails with one
# clear error line and a non-zero exit, and the file never claims bytes that
# are not on R replicas.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
CAP=$((4 * 1048576))

# used_ok MSG: no chunkserver directory holds more than CAP bytes of chunks.
used_ok() {
  local d used
  for d in $(chunk_dirs); do
    used="$(find "$d/chunks" -name '*.chunk' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
    [[ "$used" -le "$CAP" ]] || fail "$1: $d holds $used bytes, over the capacity $CAP"
  done
}

run_gfs --capacity 4Q ls /
assert_exit 2 "a bad size"
assert_contains "$ERR" "--capacity"

# K = 4, R = 3, 1 MiB chunks, 4 MiB per server: room for 5 chunks (16 MiB /
# 3 MiB per chunk). One-chunk files, one job each: placement sees exact use.
GLOBALS=(--chunk-size 1M --capacity 4M --chunkservers 4 --replication 3)
for i in 1 2 3 4 5; do
  rand_file "$TMP/in$i" 1048576
  run_gfs put "$TMP/in$i" /f$i
  assert_ok "put $i of 5 fits"
  used_ok "after put $i"
done
run_gfs report --json
assert_ok "report"
python3 - "$OUT" "$CAP" <<'PY' || fail "report: $OUT"
import json, sys
r, cap = json.loads(sys.argv[1]), int(sys.argv[2])
assert [s["capacity"] for s in r["chunkservers"]] == [cap] * 4, r
assert sum(s["used"] for s in r["chunkservers"]) == 15 * 1048576, r
PY
rand_file "$TMP/in6" 1048576
run_gfs put "$TMP/in6" /f6
assert_fails "a sixth chunk has no three servers with room"
assert_one_error_line "/f6"
used_ok "after the refused put"
# put is all or nothing: nothing under the final name, no temporary left.
run_gfs stat /f6
assert_exit 1 "a failed put leaves nothing under its name"
run_gfs ls /
assert_ok
assert_not_contains "$OUT" ".gfs-tmp." "the failed put's temporary is removed"
for i in 1 2 3 4 5; do
  run_gfs get /f$i "$TMP/out$i"
  assert_ok "get $i"
  assert_same_file "$TMP/in$i" "$TMP/out$i" "file $i"
done
# With R = 1 the one server with room takes new chunks (writes go elsewhere).
GLOBALS=(--chunk-size 1M --capacity 4M --chunkservers 4 --replication 1)
run_gfs put "$TMP/in6" /g
assert_ok "R = 1 put goes to the server with room"
run_gfs get /g "$TMP/outg"
assert_same_file "$TMP/in6" "$TMP/outg" "/g"
used_ok "after the R = 1 put"

# A multi-chunk write that runs out of room in the middle (K = R = 3, 4 MiB
# each, 3 MiB already used): fails cleanly; whatever length the file has is
# readable and is the start of what was written.
DATA="$TMP/data2"
GLOBALS=(--chunk-size 1M --capacity 4M)
rand_file "$TMP/a" $((3 * 1048576))
run_gfs put "$TMP/a" /a
assert_ok "put 3 MiB"
rand_file "$TMP/b" $((3 * 1048576))
run_gfs put "$TMP/b" /b
assert_fails "3 MiB more do not fit"
assert_one_error_line "/b"
used_ok "after the partial put"
run_gfs stat /b
assert_exit 1 "a put that ran out of room leaves nothing under its name"
run_gfs ls /
assert_not_contains "$OUT" ".gfs-tmp." "the failed put's temporary is removed"
run_gfs get /a "$TMP/outa"
assert_same_file "$TMP/a" "$TMP/outa" "/a after the refused write"
# With room again the same put succeeds (no "already exists").
run_gfs rm --skip-trash /a
assert_ok
run_gfs put "$TMP/b" /b
assert_ok "the retried put"
run_gfs get /b "$TMP/outb"
assert_same_file "$TMP/b" "$TMP/outb" "/b after the retry"
pass
