#!/bin/bash
# Fault case 6: a damaged op-log tail or checkpoint, as a user meets it
# through the launcher (doc/disk-format-master.md, "Recovery" and "The
# torn-tail rule").
#  1. Garbage after the newest log's last record, or that record cut short:
#     the next job exits 0 with a one-line warning, drops only the torn bytes
#     (and with them the cut record), truncates them away, and goes on.
#  2. The newest checkpoint bit-flipped or truncated: the next job warns that
#     it skipped it and rebuilds from the older checkpoint plus the logs.
#  3. Damage followed by valid records (a bad record in the middle of a log,
#     or a cut closed log whose records a later log continues) is never
#     skipped: the job fails with one error line naming the file, exit 1,
#     and the files on disk are left as they were.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

# records FILE: "offset payload_len seq" for each well-framed record of a log.
records() {
  python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
p = 40
while p + 16 <= len(b):
    crc, ln, seq = struct.unpack_from("<IIQ", b, p)
    if p + 16 + ln > len(b):
        break
    print(p, ln, seq)
    p += 16 + ln
PY
}

# flip_byte FILE OFFSET: invert every bit of one byte in place.
flip_byte() {
  python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    c = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([c[0] ^ 0xFF]))
PY
}

newest() { find "$DATA/master" -maxdepth 1 -name "$1-*" -printf '%f\n' | sort | tail -n 1; }
sha() { sha256sum <"$1" | cut -d' ' -f1; }
warnings() { grep -c 'warning:' "$ERR_FILE" || true; }

# assert_tree LOCAL REMOTE: one job copies REMOTE out; it equals LOCAL.
assert_tree() {
  rm -rf "$TMP/out"
  run_gfs get -r "$2" "$TMP/out"
  assert_ok "get -r $2"
  diff -r "$1" "$TMP/out" >"$TMP/diff.txt" 2>&1 || fail "$2 differs from $1: $(head -c 1500 "$TMP/diff.txt")"
}

# ---- 1. torn tail of the newest log ----
GLOBALS=(--chunk-size 1M --chunkservers 3)
EXPECT="$TMP/t1"
mkdir -p "$EXPECT/x"
rand_file "$EXPECT/x/one.bin" $((1048576 + 777))
rand_file "$EXPECT/two.bin" $(($(scaled_mb 4) * 1048576 + 4321))
rand_file "$TMP/gone.bin" 5000
run_gfs mkdir -p /t/x
assert_ok "mkdir /t/x"
run_gfs put "$EXPECT/x/one.bin" /t/x/one.bin
assert_ok "put one"
run_gfs put "$EXPECT/two.bin" /t/two.bin
assert_ok "put two"
run_gfs put "$TMP/gone.bin" /t/gone.bin
assert_ok "put gone"
run_gfs rm /t/gone.bin
assert_ok "rm gone"
LOG="$(newest log)"
[[ -n "$LOG" ]] || fail "no log file in $DATA/master"
BEFORE="$(stat -c %s "$DATA/master/$LOG")"
run_gfs mkdir /last
assert_ok "mkdir /last"
assert_eq "$LOG" "$(newest log)" "mkdir /last went to another log"
SIZE="$(stat -c %s "$DATA/master/$LOG")"
# mkdir /last is one record: 16 header bytes + payload (version, type,
# u32 length, "/last", parents) = 28. So the tail cut below is exactly it.
assert_eq 28 $((SIZE - BEFORE)) "bytes the job 'mkdir /last' logged"
LAST_SEQ="$(records "$DATA/master/$LOG" | tail -n 1 | cut -d' ' -f3)"
mkdir "$TMP/cut" "$TMP/mid"
cp -a "$DATA" "$TMP/cut/"
cp -a "$DATA" "$TMP/mid/"

# 1a. Zeros after the last record (a file system that extended the file but
# lost the write).
head -c 1000 /dev/zero >>"$DATA/master/$LOG"
run_gfs ls /
assert_ok "ls after zeros were appended to the log"
assert_contains "$ERR" "master rank 0: warning: $DATA/master/$LOG: dropped torn tail of 1000 bytes at offset $SIZE (checksum/length mismatch) after seq $LAST_SEQ"
assert_eq 1 "$(stderr_lines)" "stderr lines of the recovering job"
assert_contains "$OUT" "/last" "the last acknowledged op survives garbage after it"
assert_eq "$SIZE" "$(stat -c %s "$DATA/master/$LOG")" "log size after the torn tail was cut away"
rand_file "$EXPECT/after.bin" 300000
run_gfs put "$EXPECT/after.bin" /t/after.bin
assert_ok "put after recovery"
assert_tree "$EXPECT" /t
assert_eq "" "$ERR" "stderr once the tail is gone"

# 1b. The last record cut short (a crash in the middle of its write).
DATA="$TMP/cut/data"
rm -f "$EXPECT/after.bin"
truncate -s $((SIZE - 5)) "$DATA/master/$LOG"
run_gfs ls /
assert_ok "ls after the last record was cut"
assert_contains "$ERR" "master rank 0: warning: $DATA/master/$LOG: dropped torn tail of 23 bytes at offset $BEFORE (truncated record) after seq $((LAST_SEQ - 1))"
assert_eq 1 "$(stderr_lines)" "stderr lines of the recovering job"
assert_contains "$OUT" "/t"
assert_not_contains "$OUT" "/last" "the cut record (mkdir /last) must be gone"
assert_eq "$BEFORE" "$(stat -c %s "$DATA/master/$LOG")" "log size after the cut record was dropped"
run_gfs mkdir /last
assert_ok "mkdir /last again (it was lost with the torn tail)"
rand_file "$EXPECT/after.bin" 300000
run_gfs put "$EXPECT/after.bin" /t/after.bin
assert_ok "put after recovery"
run_gfs ls /
assert_ok "ls"
assert_contains "$OUT" "/last" "a later job sees the re-created /last"
assert_eq "" "$ERR" "stderr of a later job"
assert_tree "$EXPECT" /t

# ---- 3a. a bad record in the middle of the log ----
DATA="$TMP/mid/data"
rm -f "$EXPECT/after.bin"
mapfile -t RECS < <(records "$DATA/master/$LOG")
((${#RECS[@]} >= 6)) || fail "expected at least 6 records in $LOG, found ${#RECS[@]}"
read -r OFF LEN SEQ <<<"${RECS[$((${#RECS[@]} / 2))]}"
GOOD="$(sha "$DATA/master/$LOG")"
flip_byte "$DATA/master/$LOG" $((OFF + 16 + LEN / 2))
BAD="$(sha "$DATA/master/$LOG")"
run_gfs ls /
assert_exit 1 "a corrupt record followed by valid ones"
assert_one_error_line "$DATA/master/$LOG" "corrupt record at offset $OFF (after seq $((SEQ - 1)))" \
  "refusing to skip it"
assert_lt "$ELAPSED" 20 "seconds the failing job took"
assert_eq "$BAD" "$(sha "$DATA/master/$LOG")" "the failed job changed the damaged log"
assert_no_leftovers
flip_byte "$DATA/master/$LOG" $((OFF + 16 + LEN / 2))
assert_eq "$GOOD" "$(sha "$DATA/master/$LOG")" "byte restored"
assert_tree "$EXPECT" /t
assert_eq 0 "$(warnings)" "warnings with the log repaired"

# ---- 2. damaged newest checkpoint ----
DATA="$TMP/ck/data"
GLOBALS=(--chunk-size 1M --chunkservers 3 --log-roll 4K)
EXPECT="$TMP/t2"
mkdirs() {
  # About 60 bytes of log per directory: 100 of them pass 4K at least once.
  local names=() i
  for i in $(seq -w "$1" "$2"); do names+=("dirs/directory-with-a-longer-name-$i"); done
  (cd "$EXPECT" && mkdir -p "${names[@]}")
  run_gfs mkdir -p "${names[@]/#//ck/}"
  assert_ok "mkdir $1..$2"
}
putdir() {
  mkdir -p "$EXPECT/$1"
  rand_file "$EXPECT/$1/small.bin" 4000
  rand_file "$EXPECT/$1/big.bin" $((1048576 * 2 + 99))
  run_gfs put -r "$EXPECT/$1" "/ck/$1"
  assert_ok "put -r $1"
}
mkdir -p "$EXPECT"
putdir a
mkdirs 1 100
putdir b
mkdirs 101 200
putdir c
mapfile -t CKPTS < <(find "$DATA/master" -maxdepth 1 -name 'checkpoint-*' ! -name '*.corrupt' -printf '%f\n' | sort)
assert_eq 2 "${#CKPTS[@]}" "checkpoints kept (default --keep-checkpoints 2): ${CKPTS[*]}"
OLDER="${CKPTS[0]}"
NEWER="${CKPTS[1]}"
OLDER_SEQ=$((10#${OLDER#checkpoint-}))
NEWER_SEQ=$((10#${NEWER#checkpoint-}))
[[ "$OLDER" =~ ^checkpoint-[0-9]{20}$ && "$NEWER" =~ ^checkpoint-[0-9]{20}$ ]] ||
  fail "checkpoint names: ${CKPTS[*]}"
# Every log the older checkpoint needs is still there, and none before it.
FIRST_LOG="$(find "$DATA/master" -maxdepth 1 -name 'log-*' -printf '%f\n' | sort | head -n 1)"
assert_eq "$(printf 'log-%020d' $((OLDER_SEQ + 1)))" "$FIRST_LOG" "oldest log kept"
[[ -f "$DATA/master/$(printf 'log-%020d' $((NEWER_SEQ + 1)))" ]] ||
  fail "log-$((NEWER_SEQ + 1)) missing: $(ls "$DATA/master")"
assert_tree "$EXPECT" /ck
assert_eq 0 "$(warnings)" "warnings before any damage"
cp "$DATA/master/$NEWER" "$TMP/newer.orig"

# 2a. A bit flip in the middle.
flip_byte "$DATA/master/$NEWER" $(($(stat -c %s "$DATA/master/$NEWER") / 2))
assert_tree "$EXPECT" /ck
assert_contains "$ERR" "master rank 0: warning: skipped checkpoint $NEWER ("
assert_not_contains "$ERR" "$OLDER" "the older checkpoint is the one used"
assert_eq 1 "$(stderr_lines)" "stderr lines"

# 2b. Cut in half (incomplete), with the good bytes back first.
cp "$TMP/newer.orig" "$DATA/master/$NEWER"
truncate -s $(($(stat -c %s "$DATA/master/$NEWER") / 2)) "$DATA/master/$NEWER"
assert_tree "$EXPECT" /ck
assert_contains "$ERR" "master rank 0: warning: skipped checkpoint $NEWER ("
assert_eq 1 "$(stderr_lines)" "stderr lines"
# The corrupt checkpoint was moved aside (not counted by retention).
[[ -f "$DATA/master/$NEWER.corrupt" ]] || fail "$NEWER was not moved aside as $NEWER.corrupt"
# Still usable for new work: more files, more checkpoints.
putdir d
mkdirs 201 300
assert_tree "$EXPECT" /ck

# ---- 3b. a cut closed log, the newest checkpoint unusable ----
# The records the cut removed are continued by the next log: not a torn tail
# but lost history, so the job must refuse to start.
mapfile -t CKPTS < <(find "$DATA/master" -maxdepth 1 -name 'checkpoint-*' ! -name '*.corrupt' -printf '%f\n' | sort)
mapfile -t LOGS < <(find "$DATA/master" -maxdepth 1 -name 'log-*' -printf '%f\n' | sort)
assert_eq 2 "${#CKPTS[@]}" "checkpoints after more rollovers: ${CKPTS[*]}"
((${#LOGS[@]} >= 2)) || fail "expected two logs, found: ${LOGS[*]}"
NEWER="${CKPTS[1]}"
cp "$DATA/master/$NEWER" "$TMP/newer.orig"
cp "$DATA/master/${LOGS[0]}" "$TMP/log0.orig"
flip_byte "$DATA/master/$NEWER" 100
truncate -s -3 "$DATA/master/${LOGS[0]}"
run_gfs ls /ck
assert_exit 1 "a closed log cut short, its successor kept"
assert_one_error_line "$DATA/master/${LOGS[1]}: starts at seq" "(records missing)" \
  "skipped checkpoint $NEWER" "dropped torn tail of"
assert_no_leftovers
cp "$TMP/newer.orig" "$DATA/master/$NEWER"
cp "$TMP/log0.orig" "$DATA/master/${LOGS[0]}"
assert_tree "$EXPECT" /ck
assert_eq "" "$ERR" "stderr with every file repaired"
pass
