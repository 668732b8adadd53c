#!/bin/bash
# A store has an identity (master/VERSION, chunkserver-N/STORE):
#  - master/ removed beside chunkservers holding chunks: the job refuses to
#    serve with one line naming what it found, and no chunk file is deleted;
#  - 'gfs format' without -f says what it would discard and discards nothing;
#  - a chunkserver directory of another store is refused, its chunks left
#    alone, while the store serves from its other replicas;
#  - 'gfs format -f' makes a new, empty store;
#  - a data directory of the previous formats (no VERSION, STORE or FORMAT
#    files, format-1 checksum headers) is upgraded at start, one line each,
#    and reads back as it was.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
GLOBALS=(--chunk-size 1M --scrub-mb-per-s 0)
rand_file "$TMP/in.bin" $((3 * 1048576 + 100))
run_gfs put "$TMP/in.bin" /f
assert_ok "put"
count_chunks() { find "$1" -name '*.chunk' | wc -l; }
chunks_before="$(count_chunks "$DATA")"
[[ "$chunks_before" -eq 12 ]] || fail "expected 12 chunk files, found $chunks_before"
store="$(sed -n 's/^store //p' "$DATA/master/VERSION")"
[[ "$store" =~ ^[0-9a-f]{16}$ ]] || fail "master/VERSION names no store: $(cat "$DATA/master/VERSION")"
for d in "$DATA"/chunkserver-*; do
  assert_eq "$store" "$(cat "$d/STORE")" "$d/STORE"
done

# The master's directory lost.
mv "$DATA/master" "$TMP/master.saved"
run_gfs ls /
assert_fails "ls with the master's metadata gone"
assert_one_error_line "refusing to start" "holds no master metadata" "chunks of store $store" \
  "gfs format -f"
assert_eq "$chunks_before" "$(count_chunks "$DATA")" "chunk files after the refused job"
run_gfs format
assert_fails "format without -f on a store that holds chunks"
assert_one_error_line "gfs format -f" "$chunks_before chunks"
assert_eq "$chunks_before" "$(count_chunks "$DATA")" "chunk files after format without -f"
rm -rf "$DATA/master"
mv "$TMP/master.saved" "$DATA/master"
run_gfs get /f "$TMP/out.bin"
assert_ok "get with the master's metadata back"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "the file, with the metadata back"

# A chunkserver directory of another store in place of chunkserver-2.
OTHER="$TMP/other"
rand_file "$TMP/b.bin" 200000
DATA="$OTHER" run_gfs put "$TMP/b.bin" /b
assert_ok "put into the other store"
rm -rf "$DATA/chunkserver-2"
cp -a "$OTHER/chunkserver-0" "$DATA/chunkserver-2"
foreign="$(find "$DATA/chunkserver-2" -name '*.chunk' | sort | md5sum)"
rm -f "$TMP/out.bin"
run_gfs get /f "$TMP/out.bin"
assert_ok "get with one chunkserver of another store"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "the file, from the replicas left"
assert_contains "$ERR" "chunkserver-2 belongs to store" "the master names the refused directory"
assert_eq "$foreign" "$(find "$DATA/chunkserver-2" -name '*.chunk' | sort | md5sum)" \
  "the other store's chunk files are left alone"
cmp -s "$OTHER/chunkserver-0/STORE" "$DATA/chunkserver-2/STORE" || fail "the other store's STORE changed"

# format -f: a new store, empty, every chunk discarded.
run_gfs format -f
assert_ok "format -f"
assert_contains "$OUT" "discarding" "format says what it discards"
assert_contains "$OUT" "is empty and ready" "format's result"
new_store="$(sed -n 's/^store //p' "$DATA/master/VERSION")"
[[ "$new_store" != "$store" ]] || fail "format -f kept the old store id"
assert_eq 0 "$(count_chunks "$DATA")" "chunk files after format -f"
run_gfs ls /
assert_ok "ls after format -f"
assert_eq "" "$OUT" "an empty namespace"
for d in "$DATA"/chunkserver-*; do
  assert_eq "$new_store" "$(cat "$d/STORE")" "$d/STORE after format -f"
done

# The previous formats: no VERSION, STORE or FORMAT files, format-1 checksum
# headers (magic, format 1, block size, CRC32C of those 12 bytes).
OLD="$TMP/old"
DATA="$OLD" run_gfs put "$TMP/in.bin" /f
assert_ok "put (to be made old)"
rm -f "$OLD/master/VERSION" "$OLD"/chunkserver-*/STORE "$OLD"/chunkserver-*/chunks/FORMAT
python3 - "$OLD" <<'PY'
import glob, struct, sys
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
for path in glob.glob(sys.argv[1] + "/chunkserver-*/chunks/*.crc"):
    raw = open(path, "rb").read()
    head = struct.pack("<III", 0x43534647, 1, 65536)
    open(path, "wb").write(head + struct.pack("<I", crc32c(head)) + raw[48:])
PY
rm -f "$TMP/out.bin"
DATA="$OLD" run_gfs get /f "$TMP/out.bin"
assert_ok "get from a directory of the previous formats"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "the file after the upgrade"
assert_contains "$ERR" "metadata upgraded from layout 1 to layout 2" "the master's upgrade line"
assert_eq 3 "$(grep -c 'from chunk store format 1 to 2' "$ERR_FILE")" "one upgrade line per chunkserver"
DATA="$OLD" run_gfs fsck --verify /f
assert_ok "fsck --verify after the upgrade"
assert_eq 1 "$(cat "$OLD"/chunkserver-*/STORE "$OLD/master/VERSION" | grep -o '[0-9a-f]\{16\}' | sort -u | grep -c .)" \
  "one store id everywhere after the upgrade"
pass
