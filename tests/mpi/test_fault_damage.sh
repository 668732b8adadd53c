#!/bin/bash
# Damage never deletes the last good copy and is never read as zeros:
#  1. R = 1, one bit flipped in the middle of the only replica: fsck --verify
#     lists the damaged range (exit 5) and keeps the replica; a get fails with
#     one line naming the file and the range; every other block reads back
#     right; with the bit restored the file reads back whole and fsck is
#     healthy.
#  2. R = 3, a bad block in every replica (a different block in each): reads
#     are right, fsck --verify finds all three, and the repair takes each
#     block from a replica whose copy is good: in place (same files), after
#     which every replica holds the right bytes.
#  3. R = 3, the same block bad in every replica: that range is unreadable
#     (fsck exit 5 names it), every other block reads back right.
#  4. Every replica's checksum file cut to 4 bytes: no read returns zeros,
#     fsck --verify reports the damage, no data file is shortened.
#  5. One replica's data file cut on a block boundary: reads are right, fsck
#     --verify reports it, the repair restores it to its full length.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
PROG="$GFS_TEST_PROGRAMS/fault_client"
BS=65536

# flip_bit FILE OFFSET: xor one bit of the byte at OFFSET.
flip_bit() {
  python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)[0]
    f.seek(int(sys.argv[2]))
    f.write(bytes([b ^ 0x10]))
PY
}

# blocks CS R FILE LOCAL: reads FILE block by block in a job of CS chunkservers
# at R; leaves WORK/blocks and prints the result line.
blocks() {
  rm -rf "$TMP/w"
  mkdir -p "$TMP/w"
  run_cmd "${MPIRUN_RECOVERY[@]}" -np $(($1 + 2)) "$PROG" blocks "$DATA" "$TMP/w" cs="$1" r="$2" \
    chunk=1048576 scrub=0 path="$3" local="$4"
  [[ -s "$TMP/w/result" ]] || fail "blocks: no result written: $ERR"
  cat "$TMP/w/result"
}

# command_error CMD NEEDLE...: stderr has exactly one line of CMD's error
# ("gfs: CMD: ..."), holding every NEEDLE (the master may add its own
# diagnostic line about the damage it was told of).
command_error() {
  local cmd="$1" line
  shift
  assert_eq 1 "$(grep -c "^gfs: $cmd:" "$ERR_FILE" || true)" "error lines of $cmd"
  line="$(grep "^gfs: $cmd:" "$ERR_FILE")"
  local n
  for n in "$@"; do assert_contains "$line" "$n" "$cmd's error line"; done
}

# fsck_field JSON EXPR: a Python expression over the parsed fsck JSON `r`.
fsck_field() { python3 -c "import json,sys; r=json.load(sys.stdin); print($2)" <<<"$1"; }

# ---- 1. R = 1, one flipped bit ------------------------------------------
DATA="$TMP/d1"
GLOBALS=(--chunkservers 1 --replication 1 --chunk-size 1M --scrub-mb-per-s 0)
rand_file "$TMP/one.bin" 1048576
run_gfs put "$TMP/one.bin" /f
assert_ok "put at R = 1"
replica="$DATA/chunkserver-0/chunks/0000000000000001.chunk"
BAD=$((8 * BS + 1234))  # inside block 8: bytes 524288..589824
flip_bit "$replica" "$BAD"
run_gfs fsck --verify --json /f
assert_exit 5 "fsck --verify with the only copy of a block damaged"
[[ -f "$replica" ]] || fail "the damaged replica was deleted"
assert_eq "[[524288, 65536]]" "$(fsck_field "$OUT" 'r["files"][0]["chunk_list"][0]["unreadable"]')" \
  "fsck names the unreadable range"
assert_eq 65536 "$(fsck_field "$OUT" 'r["files"][0]["unreadable_bytes"]')" "unreadable bytes"
run_gfs get /f "$TMP/out.bin"
assert_fails "get of a file with an unreadable block"
command_error get "/f" "524288..589824" "65536 bytes at offset 524288"
res="$(blocks 1 1 /f "$TMP/one.bin")"
assert_contains "$res" "OK unreadable=1" "one block unreadable, none wrong"
assert_eq "524288 err" "$(grep -v ' ok$' "$TMP/w/blocks" | cut -d' ' -f1-2)" "the only failing block"
assert_contains "$(cat "$TMP/w/blocks")" "corruption" "the block's error"
flip_bit "$replica" "$BAD"  # the bit restored
rm -f "$TMP/out.bin"
run_gfs get /f "$TMP/out.bin"
assert_ok "get once the bit is restored"
assert_same_file "$TMP/one.bin" "$TMP/out.bin" "bytes after the bit is restored"
run_gfs fsck --verify /f
assert_ok "fsck --verify once the bit is restored"

# ---- 2. R = 3, a different bad block in every replica -----------------------
DATA="$TMP/d2"
GLOBALS=(--chunkservers 3 --replication 3 --chunk-size 1M --scrub-mb-per-s 0)
rand_file "$TMP/three.bin" $((3 * 1048576 - 999))
run_gfs put "$TMP/three.bin" /g
assert_ok "put at R = 3"
H=0000000000000002  # the second chunk
declare -a inodes=()
for k in 0 1 2; do
  f="$DATA/chunkserver-$k/chunks/$H.chunk"
  inodes+=("$(stat -c %i "$f")")
  flip_bit "$f" $(((1 + 4 * k) * BS + 77))  # blocks 1, 5 and 9
done
run_gfs fsck --verify --json /g
assert_exit 4 "three damaged replicas, every block good somewhere: under-replicated"
assert_eq 3 "$(fsck_field "$OUT" 'r["files"][0]["corrupt_replicas"]')" "damaged replicas found"
assert_eq 0 "$(fsck_field "$OUT" 'r["files"][0]["unreadable_bytes"]')" "nothing unreadable"
rm -f "$TMP/out.bin"
run_gfs get /g "$TMP/out.bin"
assert_ok "get with a bad block in every replica"
assert_same_file "$TMP/three.bin" "$TMP/out.bin" "reads go around damaged blocks"
run_gfs --heartbeat-ms 200 --lease-seconds 5 fsck --verify --wait 60 --json /g
assert_ok "repair of every replica, block by block"
for k in 0 1 2; do
  f="$DATA/chunkserver-$k/chunks/$H.chunk"
  [[ -f "$f" ]] || fail "replica $f was deleted"
  assert_eq "${inodes[$k]}" "$(stat -c %i "$f")" "replica $f repaired in place"
  cmp -s <(dd if="$TMP/three.bin" bs=1048576 skip=1 count=1 status=none) "$f" ||
    fail "replica $f does not hold the chunk's bytes after the repair"
done
run_gfs fsck --verify /g
assert_ok "fsck --verify after the repair"

# ---- 3. R = 3, the same block bad in every replica --------------------------
for k in 0 1 2; do flip_bit "$DATA/chunkserver-$k/chunks/$H.chunk" $((3 * BS + 5)); done
run_gfs fsck --verify --json /g
assert_exit 5 "a block bad in every replica"
assert_eq "[[1245184, 65536]]" "$(fsck_field "$OUT" 'r["files"][0]["chunk_list"][1]["unreadable"]')" \
  "the unreadable range, at its file offset (chunk 1, block 3)"
res="$(blocks 3 3 /g "$TMP/three.bin")"
assert_contains "$res" "OK unreadable=1" "one block unreadable, none wrong"
assert_eq "1245184 err" "$(grep -v ' ok$' "$TMP/w/blocks" | cut -d' ' -f1-2)" "the failing block"
for k in 0 1 2; do
  [[ -f "$DATA/chunkserver-$k/chunks/$H.chunk" ]] || fail "a replica was deleted"
done

# ---- 4. every replica's checksum file cut to 4 bytes ------------------------
DATA="$TMP/d4"
rand_file "$TMP/four.bin" 1000000
run_gfs put "$TMP/four.bin" /h
assert_ok "put (4)"
declare -a sizes=()
for k in 0 1 2; do
  truncate -s 4 "$DATA/chunkserver-$k/chunks/0000000000000001.crc"
  sizes+=("$(stat -c %s "$DATA/chunkserver-$k/chunks/0000000000000001.chunk")")
done
rm -f "$TMP/out.bin"
run_gfs get /h "$TMP/out.bin"
assert_fails "get when no replica has checksums"
command_error get "/h" "unreadable"
run_gfs fsck --verify --json /h
assert_exit 5 "no replica has checksums"
assert_eq 1000000 "$(fsck_field "$OUT" 'r["files"][0]["unreadable_bytes"]')" "all of it unreadable"
for k in 0 1 2; do
  assert_eq "${sizes[$k]}" "$(stat -c %s "$DATA/chunkserver-$k/chunks/0000000000000001.chunk")" \
    "data file of replica $k not shortened"
done

# ---- 5. one replica's data file cut on a block boundary ---------------------
DATA="$TMP/d5"
rand_file "$TMP/five.bin" $((1048576 - 3000))
run_gfs put "$TMP/five.bin" /k
assert_ok "put (5)"
cut="$DATA/chunkserver-1/chunks/0000000000000001.chunk"
truncate -s $((6 * BS)) "$cut"
# The chunkserver reports the short data file when it registers, so the
# master may have repaired it before the verification ran: either fsck lists
# it, or the master said it repaired it (an info line: -v).
run_gfs -v fsck --verify --json /k
if [[ "$RC" == 0 ]]; then
  assert_contains "$ERR" "is repaired" "a short replica repaired before fsck looked"
else
  assert_exit 4 "fsck --verify finds the short replica"
  assert_eq 1 "$(fsck_field "$OUT" 'r["files"][0]["corrupt_replicas"]')" "the short replica"
fi
rm -f "$TMP/out.bin"
run_gfs get /k "$TMP/out.bin"
assert_ok "get with one replica cut short"
assert_same_file "$TMP/five.bin" "$TMP/out.bin" "no zeros from the short replica"
run_gfs --heartbeat-ms 200 --lease-seconds 5 fsck --verify --wait 60 /k
assert_ok "the short replica repaired"
assert_eq $((1048576 - 3000)) "$(stat -c %s "$cut")" "the cut replica back to its full length"
cmp -s "$TMP/five.bin" "$cut" || fail "the repaired replica's bytes differ"
pass
