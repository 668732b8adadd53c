#!/bin/bash
# Snapshots and copy-on-write. A file of 8 chunks is put and snapshotted;
# `gfs write` changes 1 KiB in its middle: the original reads the new bytes,
# the snapshot the old ones; the chunk store grew by R copies of one chunk
# (not of the file), made by each chunkserver from its own replica (copies
# counted locally, no clone, almost no bytes between chunkservers); the
# next jobs on the same data directory see the same (restart); appends to a
# snapshotted record log go on in a copy of its last chunk, and both logs
# read back as expected; deleting the original keeps the snapshot's chunks.
# The command's one-line errors: source missing, destination exists,
# destination inside the source.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
MB=1048576
# 8 MiB chunks and a 64 MiB file at scale 1; smaller chunks (at least 1 MiB)
# at a smaller scale, always 8 of them.
CS_MB="$(awk -v s="$SCALE" 'BEGIN { v = int(8 * s); if (v < 1) v = 1; print v }')"
CS=$((CS_MB * MB))
R=3
GLOBALS=(--chunkservers 3 --replication "$R" --chunk-size "${CS_MB}M")

# chunk_bytes: bytes of chunk data files over every chunkserver directory.
chunk_bytes() {
  find "$DATA" -path '*/chunks/*.chunk' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
}
# cs_peer_bytes DIR: bytes chunkserver ranks sent to other chunkserver ranks.
cs_peer_bytes() {
  python3 - "$1" <<'PY'
import glob, json, sys
ranks = {}
for f in glob.glob(sys.argv[1] + "/rank-*.json"):
    j = json.load(open(f))
    ranks[j["rank"]] = j
cs = {r for r, j in ranks.items() if j["role"] == "chunkserver"}
print(sum(p["bytes_sent"] for r in cs for peer, p in ranks[r].get("peers", {}).items()
          if int(peer) in cs))
PY
}

# counter DIR ROLE NAME: a counter summed over a role's ranks, 0 where a rank
# never touched it.
counter() {
  python3 - "$@" <<'PY'
import glob, json, sys
d, role, name = sys.argv[1:4]
print(sum(j["counters"].get(name, 0)
          for j in (json.load(open(f)) for f in glob.glob(d + "/rank-*.json"))
          if j["role"] == role))
PY
}

rand_file "$TMP/orig.bin" $((8 * CS))
log "put a $((8 * CS_MB)) MiB file in ${CS_MB} MiB chunks at R = $R"
run_gfs mkdir /d
assert_ok "mkdir"
run_gfs put "$TMP/orig.bin" /d/f
assert_ok "put"

# One-line errors.
run_gfs snapshot /d/missing /s
assert_fails "snapshot of a missing source"
assert_one_error_line "/d/missing"
run_gfs snapshot /d/f /d
assert_fails "snapshot onto an existing path"
assert_one_error_line "/d"
run_gfs snapshot /d /d/inner
assert_fails "snapshot into the source's own tree"
assert_one_error_line "inside"

before="$(chunk_bytes)"
run_gfs snapshot /d /snap
assert_ok "snapshot of the tree"
assert_eq "$before" "$(chunk_bytes)" "chunk bytes after the snapshot (metadata only)"
run_gfs ls /snap
assert_ok "ls /snap"
assert_contains "$OUT" "f" "the snapshot lists the file"

# 1 KiB into the middle of chunk 4 of the original.
OFF=$((4 * CS + 12345))
rand_file "$TMP/patch.bin" 1024
run_gfs --stats-dir "$TMP/s-write" write /d/f "$OFF" "$TMP/patch.bin"
assert_ok "write into the snapshotted file"
python3 - "$TMP/orig.bin" "$TMP/patch.bin" "$OFF" "$TMP/new.bin" <<'PY'
import sys
o = bytearray(open(sys.argv[1], "rb").read())
p = open(sys.argv[2], "rb").read()
off = int(sys.argv[3])
o[off:off + len(p)] = p
open(sys.argv[4], "wb").write(o)
PY
grown=$(($(chunk_bytes) - before))
log "chunk bytes grew by $grown (one chunk: $CS, R = $R)"
assert_lt $(((R - 1) * CS)) "$grown" "growth of the store: R copies of one chunk"
assert_lt "$grown" $(((R + 1) * CS)) "growth of the store: not the file"
copied="$(python3 "$STATS_PY" sum "$TMP/s-write" chunkserver chunks_copied_local)"
assert_eq "$R" "$copied" "chunks copied locally (one per replica)"
assert_eq $((R * CS)) "$(python3 "$STATS_PY" sum "$TMP/s-write" chunkserver copy_local_bytes)" \
  "bytes copied locally"
assert_eq 0 "$(counter "$TMP/s-write" chunkserver clone_bytes)" "clone bytes"
assert_eq 0 "$(counter "$TMP/s-write" master clones_ordered)" "clones ordered"
assert_eq 1 "$(counter "$TMP/s-write" master copies_on_write)" "copies on write"
peer="$(cs_peer_bytes "$TMP/s-write")"
log "bytes between chunkservers during the write: $peer"
assert_lt "$peer" $((CS / 8)) "no chunk crossed ranks for the copy"

# Each get is a job of its own on the same data directory: a restart.
run_gfs get /d/f "$TMP/f.out"
assert_ok "get the original"
assert_same_file "$TMP/new.bin" "$TMP/f.out" "the original holds the new bytes"
run_gfs get /snap/f "$TMP/snap.out"
assert_ok "get the snapshot"
assert_same_file "$TMP/orig.bin" "$TMP/snap.out" "the snapshot holds the old bytes"

# The copy is the original's alone now: a second write to it copies nothing.
run_gfs --stats-dir "$TMP/s-write2" write /d/f $((OFF + 4096)) "$TMP/patch.bin"
assert_ok "second write"
assert_eq 0 "$(counter "$TMP/s-write2" chunkserver chunks_copied_local)" \
  "no copy for a chunk no longer shared"
python3 - "$TMP/new.bin" "$TMP/patch.bin" $((OFF + 4096)) <<'PY'
import sys
o = bytearray(open(sys.argv[1], "rb").read())
p = open(sys.argv[2], "rb").read()
off = int(sys.argv[3])
o[off:off + len(p)] = p
open(sys.argv[1], "wb").write(o)
PY

# Record logs: appends after a snapshot go on in a copy of the last chunk,
# on both sides.
for n in 100 200; do
  head -c "$n" /dev/urandom >"$TMP/rec$n"
done
for n in 300 400; do
  head -c "$n" /dev/urandom >"$TMP/rec$n"
done
run_gfs append /log "$TMP/rec100"
assert_ok "append 1"
run_gfs append /log "$TMP/rec200"
assert_ok "append 2"
run_gfs snapshot /log /logsnap
assert_ok "snapshot of the log"
run_gfs append /log "$TMP/rec300"
assert_ok "append to the log after the snapshot"
run_gfs append /logsnap "$TMP/rec400"
assert_ok "append to the snapshot of the log"
run_gfs records /log
assert_ok "records of the log"
assert_eq "100 200 300" "$(awk '{print $3}' <<<"$OUT" | xargs)" "the log's records"
run_gfs records /logsnap
assert_ok "records of the snapshot"
assert_eq "100 200 400" "$(awk '{print $3}' <<<"$OUT" | xargs)" "the snapshot's records"

# Deleting the original keeps every chunk the snapshot refers to.
run_gfs rm -r /d
assert_ok "rm the original tree"
run_gfs get /snap/f "$TMP/snap2.out"
assert_ok "get the snapshot after the original went"
assert_same_file "$TMP/orig.bin" "$TMP/snap2.out" "the snapshot after deleting the original"
run_gfs fsck /
assert_ok "fsck"
run_gfs rm -r /snap
assert_ok "rm the snapshot"
assert_no_leftovers
pass
