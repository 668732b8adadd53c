#!/bin/bash
# Trash and garbage collection through real jobs: rm moves a file to the
# trash and undelete brings it back with the same bytes, also in a later job;
# ls -a shows trash entries with their deletion times (plain ls does not);
# du and df show the trash apart; with --trash-retention 0, expunge leaves no
# chunk file of the deleted files on any chunkserver; a chunk file planted in
# a chunkserver directory (known to no file) is removed; rm --skip-trash
# deletes at once.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

MB="$(scaled_mb 8)"
rand_file "$TMP/a.bin" $((MB * 1048576 + 123))
rand_file "$TMP/b.bin" $((3 * 1048576 + 7))
GLOBALS=(--chunkservers 3 --replication 2 --chunk-size 1M)

# The chunk handles of a file, as 16 hex digits (its chunk file names).
handles_of() {
  run_gfs fsck --json --locations "$1" >&2
  assert_ok "fsck $1"
  python3 -c '
import json, sys
d = json.load(sys.stdin)
for f in d["files"]:
    for c in f["chunk_list"]:
        print(c["handle"])
' <<<"$OUT"
}
# How many chunk files (.meta) of these handles the chunkserver dirs hold.
files_of() {
  local n=0 h d
  for h in "$@"; do
    for d in $(chunk_dirs); do
      [[ -e "$d/chunks/$h.meta" ]] && n=$((n + 1))
    done
  done
  echo "$n"
}

run_gfs mkdir -p /d/sub
assert_ok "mkdir"
run_gfs put "$TMP/a.bin" /d/a.bin
assert_ok "put a"
run_gfs put "$TMP/b.bin" /d/sub/b.bin
assert_ok "put b"
mapfile -t HA < <(handles_of /d/a.bin)
mapfile -t HB < <(handles_of /d/sub/b.bin)
[[ ${#HA[@]} -gt 0 && ${#HB[@]} -eq 4 ]] || fail "chunk handles: ${#HA[@]} and ${#HB[@]}"

# rm: into the trash; the chunks stay.
run_gfs rm /d/a.bin
assert_ok "rm a"
run_gfs test -e /d/a.bin
assert_exit 1 "a is gone after rm"
assert_eq $((2 * ${#HA[@]})) "$(files_of "${HA[@]}")" "a's chunk files while in the trash"
run_gfs ls /d
assert_ok "ls /d"
assert_not_contains "$OUT" "a.bin" "plain ls hides the trash"
run_gfs ls /
assert_not_contains "$OUT" ".trash" "ls / hides the trash directory"
run_gfs ls -a /d
assert_ok "ls -a /d"
assert_contains "$OUT" "/d/a.bin  (deleted 20" "ls -a shows the deleted file with its time"
run_gfs ls -a --json /d
assert_ok "ls -a --json"
python3 -c '
import json, sys
e = {x["path"]: x for x in json.load(sys.stdin)}
assert e["/d/a.bin"]["deleted_ms"] > 0 and e["/d/a.bin"]["trash_path"].startswith("/.trash/"), e
assert "deleted_ms" not in e["/d/sub"], e
' <<<"$OUT" || fail "ls -a --json"
run_gfs du --json /d
assert_ok "du"
python3 -c '
import json, sys
rows = json.load(sys.stdin)
trash = [r for r in rows if r.get("trash")]
assert len(trash) == 1 and trash[0]["path"] == "/d" and trash[0]["size"] == int(sys.argv[1]), rows
assert trash[0]["space_consumed"] == 2 * trash[0]["size"], rows
' "$(stat -c %s "$TMP/a.bin")" <<<"$OUT" || fail "du shows the trash apart"
run_gfs df --json
assert_ok "df"
assert_eq 1 "$(json_get trash_files <<<"$OUT")" "df: files in the trash"
run_gfs get -r / "$TMP/all"
assert_ok "get -r /"
[[ -d "$TMP/all/d/sub" && ! -e "$TMP/all/.trash" && ! -e "$TMP/all/d/a.bin" ]] ||
  fail "get -r / copies the live tree and leaves the trash out"

# undelete, in a later job (the trash survives the restart): same bytes.
run_gfs undelete /d/a.bin
assert_ok "undelete"
assert_contains "$OUT" "/d/a.bin restored" "undelete says what it did"
run_gfs get /d/a.bin "$TMP/a.out"
assert_ok "get after undelete"
assert_same_file "$TMP/a.bin" "$TMP/a.out" "undeleted contents"
run_gfs undelete /d/a.bin
assert_exit 1 "undelete of a path that exists"
assert_one_error_line "it exists: move it away first"
run_gfs undelete /d/never
assert_exit 1 "undelete with no deletion"
assert_one_error_line "no deletion of it in the trash"

# A tree: rm -r, then undelete it whole.
run_gfs rm -r /d/sub
assert_ok "rm -r"
run_gfs undelete /d/sub
assert_ok "undelete a tree"
run_gfs get /d/sub/b.bin "$TMP/b.out"
assert_same_file "$TMP/b.bin" "$TMP/b.out" "undeleted tree"

# Plant a chunk known to no file in one chunkserver directory (a copy of a
# valid .meta file renamed to a handle no file has, its handle field fixed).
D0="$(chunk_dirs | head -1)"
SRC="$(find "$D0/chunks" -name '*.meta' | head -1)"
[[ -n "$SRC" ]] || fail "no chunk in $D0"
ORPHAN=00000fff00000001
python3 - "$SRC" "$D0/chunks/$ORPHAN.meta" <<'PY'
import struct, sys
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
m = bytearray(open(sys.argv[1], "rb").read())
m[8:16] = struct.pack("<Q", 0x00000fff00000001)
m[24:28] = struct.pack("<I", crc32c(bytes(m[:24])))
open(sys.argv[2], "wb").write(bytes(m))
PY

# With retention 0: rm deletes at once, and expunge removes the old trash
# and every chunk no file refers to before it returns.
run_gfs rm /d/a.bin
assert_ok "rm into the trash"
GLOBALS=(--chunkservers 3 --replication 2 --chunk-size 1M --trash-retention 0)
run_gfs rm -r /d/sub
assert_ok "rm with retention 0"
run_gfs test -e /.trash
assert_ok "the older deletion is still in the trash"
run_gfs expunge --json
assert_ok "expunge"
log "expunge: $OUT"
assert_eq 0 "$(files_of "${HA[@]}" "${HB[@]}")" "chunk files of deleted files after expunge"
[[ ! -e "$D0/chunks/$ORPHAN.meta" ]] || fail "the planted chunk was not removed"
run_gfs ls /.trash
assert_ok "ls /.trash"
assert_eq "" "$OUT" "the trash is empty after expunge with retention 0"
run_gfs undelete /d/a.bin
assert_exit 1 "nothing to undelete after expunge"

# --skip-trash deletes at once whatever the retention.
GLOBALS=(--chunkservers 3 --replication 2 --chunk-size 1M)
run_gfs put "$TMP/b.bin" /c.bin
assert_ok "put c"
mapfile -t HC < <(handles_of /c.bin)
run_gfs rm --skip-trash /c.bin
assert_ok "rm --skip-trash"
run_gfs expunge
assert_ok "expunge after skip-trash"
assert_eq 0 "$(files_of "${HC[@]}")" "chunk files of a skip-trash delete"
run_gfs df --json
assert_eq 0 "$(json_get trash_files <<<"$OUT")" "df: an empty trash"
pass
