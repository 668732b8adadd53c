#!/bin/bash
# `gfs write` across chunk boundaries (1 MiB chunks) and past the end of the
# file, compared with a local copy changed the same way; replicas stay
# identical after the overwrites.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

GLOBALS=(--chunkservers 4 --replication 3 --chunk-size 1M)
MiB=1048576
SIZE=$((3 * MiB + 12345))
rand_file "$TMP/base.bin" "$SIZE"
cp "$TMP/base.bin" "$TMP/expect.bin"

run_gfs put "$TMP/base.bin" /w.bin
assert_ok "put"

# local_write OFFSET PIECE: apply the same change to the local copy.
local_write() { dd if="$2" of="$TMP/expect.bin" bs=1M seek="$1" oflag=seek_bytes conv=notrunc status=none; }

# gwrite OFFSET LENGTH: write LENGTH random bytes at OFFSET in both places.
n=0
gwrite() {
  n=$((n + 1))
  local piece="$TMP/piece-$n.bin"
  rand_file "$piece" "$2"
  run_gfs write /w.bin "$1" "$piece"
  assert_ok "write at $1, $2 bytes"
  local_write "$1" "$piece"
}

gwrite $((MiB - 1000)) 5000                 # straddles the 1 MiB boundary
gwrite $((2 * MiB - 300000)) 700000          # straddles 2 MiB, several slices
gwrite 0 1                                   # first byte
gwrite $((3 * MiB - 1)) 2                    # straddles 3 MiB by one byte each side
gwrite $((SIZE - 100)) $((2 * MiB + 5))      # extends the file by ~2 MiB, new chunks

WANT="$(stat -c %s "$TMP/expect.bin")"
run_gfs stat --json /w.bin
assert_ok "stat"
assert_eq "$WANT" "$(json_get size <<<"$OUT")" "size after extending write"
assert_eq $(((WANT + MiB - 1) / MiB)) "$(json_count chunks <<<"$OUT")" "chunk count after extending write"

run_gfs get /w.bin "$TMP/out.bin"
assert_ok "get"
assert_same_file "$TMP/expect.bin" "$TMP/out.bin" "content after boundary writes"

run_gfs cat /w.bin
assert_ok "cat"
assert_same_file "$TMP/expect.bin" "$OUT_FILE" "cat after boundary writes"

python3 "$STATS_PY" chunks "$DATA" "$TMP/expect.bin" "$MiB" 3 || fail "replicas after writes"

pass
