#!/bin/bash
# A (scaled) 200 MiB random file, K=4 chunkservers, R=3, 8 MiB chunks:
# put in one job, get in a second job, identical bytes; every chunk on exactly
# 3 chunkserver directories with identical bytes; the push is a pipelined
# chain (client sends each byte once; --no-short-circuit, as every replica is
# on this one node); the master carries no file data and a read costs a
# handful of lookups. By default the client writes every replica's file itself.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

GLOBALS=(--chunkservers 4 --replication 3 --chunk-size 8M)
MB="$(scaled_mb 200)"
SIZE=$((MB * 1048576))
log "file size $MB MiB ($SIZE bytes), scale $SCALE"
rand_file "$TMP/in.bin" "$SIZE"

run_gfs --no-short-circuit --stats-dir "$TMP/s1" put "$TMP/in.bin" /big.bin
assert_ok "put"
assert_no_leftovers

run_gfs get /big.bin "$TMP/out.bin"
assert_ok "get"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get after put (second job)"

run_gfs stat --json /big.bin
assert_ok "stat --json"
assert_eq "$SIZE" "$(json_get size <<<"$OUT")" "stat size"
assert_eq 3 "$(json_get replication <<<"$OUT")" "stat replication"
assert_eq 8388608 "$(json_get chunk_size <<<"$OUT")" "stat chunk_size"
assert_eq file "$(json_get type <<<"$OUT")" "stat type"
assert_eq $(((SIZE + 8388607) / 8388608)) "$(json_count chunks <<<"$OUT")" "stat chunks"

# Replicas on disk.
python3 "$STATS_PY" chunks "$DATA" "$TMP/in.bin" 8388608 3 || fail "on-disk replica check"

# Chain push (stats of the put job).
python3 "$STATS_PY" chain "$TMP/s1" "$SIZE" 3 || fail "chain push check"

# The put's closing fsync: each chunkserver starts the device writes of all
# its replicas at the first sync request (one batch), none while writing.
CHUNKS=$(((SIZE + 8388607) / 8388608))
assert_eq 0 "$(python3 "$STATS_PY" sum "$TMP/s1" chunkserver writebacks_early)" "no early writeback by default"
assert_eq $((CHUNKS * 3)) "$(python3 "$STATS_PY" sum "$TMP/s1" chunkserver writebacks_batched)" \
  "fsync starts every replica's writes once"

# Early writeback (--writeback 1M): the chunkserver starts them as each
# write lands (a write is 8 MiB here), so the fsync finds nothing left to start.
run_gfs --no-short-circuit --writeback 1M --stats-dir "$TMP/s4" put "$TMP/in.bin" /wb.bin
assert_ok "put with --writeback 1M"
assert_eq 0 "$(python3 "$STATS_PY" sum "$TMP/s4" chunkserver writebacks_batched)" "nothing left at fsync"
assert_eq $((CHUNKS * 3)) "$(python3 "$STATS_PY" sum "$TMP/s4" chunkserver writebacks_early)" \
  "one early writeback per 8 MiB write per replica"
run_gfs get -f /wb.bin "$TMP/out.bin"
assert_ok "get after put with --writeback"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get after put with --writeback"
rm -f "$TMP/out.bin"

# Every replica on this node: the client writes all three replicas' files
# itself (no byte pushed), each chunkserver stores the checksums, and the
# client syncs every replica's files at close.
rm -rf "$TMP/d3"
DATA="$TMP/d3" run_gfs --stats-dir "$TMP/s7" put "$TMP/in.bin" /r3.bin
assert_ok "put at R=3, short-circuit"
assert_eq $((SIZE * 3)) "$(python3 "$STATS_PY" sum "$TMP/s7" chunkserver bytes_written_local)" \
  "every byte written short-circuit into every replica"
assert_eq $((SIZE * 3)) "$(python3 "$STATS_PY" sum "$TMP/s7" chunkserver bytes_written)" \
  "no byte written any other way"
assert_eq "$CHUNKS" "$(python3 "$STATS_PY" sum "$TMP/s7" chunkserver local_write_grants_replicated)" \
  "one grant per chunk from its primary, for all three replicas"
assert_eq $((CHUNKS * 3)) "$(python3 "$STATS_PY" sum "$TMP/s7" client local_syncs)" \
  "the client syncs every replica it wrote"
python3 "$STATS_PY" chunks "$TMP/d3" "$TMP/in.bin" 8388608 3 || fail "on-disk replica check (short-circuit)"
DATA="$TMP/d3" run_gfs fsck --verify /r3.bin
assert_ok "fsck --verify after short-circuit writes of every replica"
DATA="$TMP/d3" run_gfs get -f /r3.bin "$TMP/out.bin"
assert_ok "get after a short-circuit put at R=3"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get after a short-circuit put at R=3"
rm -f "$TMP/out.bin"

# Batched lookups (stats of a get job).
rm -f "$TMP/out.bin"
run_gfs --stats-dir "$TMP/s2" get -f /big.bin "$TMP/out.bin"
assert_ok "get with --stats-dir"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "second get"
python3 "$STATS_PY" read "$TMP/s2" "$SIZE" 5 local || fail "read path check (lookups, master off the data path)"

# The same through the chunkservers only.
rm -f "$TMP/out.bin"
run_gfs --no-short-circuit --stats-dir "$TMP/s3" get -f /big.bin "$TMP/out.bin"
assert_ok "get with --no-short-circuit"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get through the chunkservers"
python3 "$STATS_PY" read "$TMP/s3" "$SIZE" 5 wire || fail "read path check (--no-short-circuit)"

# Short-circuit writes: at R = 1 the lone replica of each chunk is on the
# client's host, so the client writes its file itself (no byte is pushed)
# and syncs it at close; the chunkservers keep every block checksummed.
GLOBALS=(--chunkservers 4 --replication 1 --chunk-size 8M)
run_gfs --stats-dir "$TMP/s5" put "$TMP/in.bin" /r1.bin
assert_ok "put at R=1"
assert_eq "$SIZE" "$(python3 "$STATS_PY" sum "$TMP/s5" chunkserver bytes_written_local)" \
  "every byte written short-circuit"
assert_eq "$SIZE" "$(python3 "$STATS_PY" sum "$TMP/s5" chunkserver bytes_written)" \
  "no byte written any other way"
assert_eq "$CHUNKS" "$(python3 "$STATS_PY" sum "$TMP/s5" client local_syncs)" \
  "the client syncs each chunk it wrote"
run_gfs fsck --verify /r1.bin
assert_ok "fsck --verify after short-circuit writes"
rm -f "$TMP/out.bin"
run_gfs get -f /r1.bin "$TMP/out.bin"
assert_ok "get at R=1"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get after a short-circuit put"
# --no-short-circuit: pushed through the chunkservers instead.
run_gfs --no-short-circuit --stats-dir "$TMP/s6" put "$TMP/in.bin" /r1p.bin
assert_ok "put at R=1 with --no-short-circuit"
assert_eq "$MB" "$(python3 "$STATS_PY" sum "$TMP/s6" chunkserver push_slices_recv)" \
  "every byte pushed (1 MiB slices) with --no-short-circuit"
assert_eq "$SIZE" "$(python3 "$STATS_PY" sum "$TMP/s6" chunkserver bytes_written)" \
  "every byte written by the chunkservers"

pass
