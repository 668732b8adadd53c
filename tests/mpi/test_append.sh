#!/bin/bash
# Record append from many producer ranks (the producer-consumer job), the
# quarter-chunk limit, and the CLI's append/records.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
SCAN="$GFS_TEST_PROGRAMS/record_scan"

# 8 producers x 20,000 records of 100 B - 16 KiB (scaled), 4 MiB chunks, R = 3.
M="$(awk -v s="$SCALE" 'BEGIN { m = int(20000 * s * s); if (m < 200) m = 200; print m }')"
log "producer-consumer: 8 producers x $M records"
GLOBALS=(--chunk-size 4M --replication 3 --clients 9)
run_gfs producer-consumer --file /pc/log --producers 8 --records "$M" --min-size 100 \
  --max-size 16384 --seed 7 --json
assert_fails "producer-consumer into a missing directory must fail"
run_gfs mkdir /pc
assert_ok "mkdir"
run_gfs producer-consumer --file /pc/log --producers 8 --records "$M" --min-size 100 \
  --max-size 16384 --seed 7 --json
assert_ok "producer-consumer job"
echo "$OUT"
assert_eq $((8 * M)) "$(json_get records <<<"$OUT")" "records read back once each"
assert_eq 0 "$(json_get missing <<<"$OUT")" "missing records"
assert_eq 0 "$(json_get corrupt <<<"$OUT")" "corrupt records"
assert_eq True "$(json_get ok <<<"$OUT")" "job verdict"

# The CLI reader sees the same records: P x M distinct (producer, sequence).
GLOBALS=()
run_gfs records /pc/log
assert_ok "records"
assert_eq $((8 * M)) "$(grep -c . <<<"$OUT")" "records lines"
assert_eq $((8 * M)) "$(awk '{print $1, $2}' <<<"$OUT" | sort -u | grep -c .)" "distinct (producer, seq)"
assert_eq 8 "$(awk '{print $1}' <<<"$OUT" | sort -u | grep -c .)" "distinct producers"
assert_eq "$((M - 1))" "$(awk '{print $2}' <<<"$OUT" | sort -n | tail -1)" "largest sequence"

# On disk: every chunk's replicas are byte-identical (no failure in this run),
# and bytes outside frames are zero padding at the end of a chunk only.
declare -A seen=()
for f in "$DATA"/chunkserver-*/chunks/*.chunk; do
  h="$(basename "$f" .chunk)"
  seen[$h]=$(( ${seen[$h]:-0} + 1 ))
done
[[ ${#seen[@]} -gt 1 ]] || fail "expected the log to span several 4 MiB chunks"
for h in "${!seen[@]}"; do
  assert_eq 3 "${seen[$h]}" "replicas of chunk $h"
  sums="$(sha256sum "$DATA"/chunkserver-*/chunks/"$h".chunk | awk '{print $1}' | sort -u | grep -c .)"
  assert_eq 1 "$sums" "distinct contents among the replicas of chunk $h"
done
"$SCAN" "$DATA"/chunkserver-0/chunks/*.chunk >"$TMP/scan" || fail "non-zero bytes after the last frame of a chunk: $(cat "$TMP/scan")"
if awk '{ split($3, g, "="); if (g[2] != 0) bad = 1 } END { exit bad ? 0 : 1 }' "$TMP/scan"; then
  fail "padding or garbage found before the end of a chunk: $(cat "$TMP/scan")"
fi

# R = 1 with the chunkserver on the producers' host: every record still goes
# through the chunkserver (pushed, ordered and written by it; no client writes
# a chunk file), with many chunk ends where appends move to the next chunk.
saved_data="$DATA"
DATA="$TMP/data-local"
MS=$((M > 2000 ? M : 2000))
GLOBALS=(--chunk-size 1M --replication 1 --chunkservers 1 --clients 5 --stats-dir "$TMP/s-local")
run_gfs producer-consumer --file /sc.log --producers 4 --records "$MS" --min-size 100 \
  --max-size 16384 --seed 9 --json
assert_ok "producer-consumer job at R = 1 on one host"
assert_eq $((4 * MS)) "$(json_get records <<<"$OUT")" "records read back once each (R = 1)"
assert_eq 0 "$(json_get missing <<<"$OUT")" "missing records (R = 1)"
assert_eq 0 "$(json_get corrupt <<<"$OUT")" "corrupt records (R = 1)"
written="$(python3 "$STATS_PY" sum "$TMP/s-local" chunkserver bytes_written)"
[[ "$written" -ge "$(json_get bytes <<<"$OUT")" ]] ||
  fail "the chunkserver wrote $written bytes, less than the records' $(json_get bytes <<<"$OUT")"
[[ "$(python3 "$STATS_PY" sum "$TMP/s-local" chunkserver appends_primary)" -gt 0 ]] ||
  fail "no append went through the chunkserver"
"$SCAN" "$DATA"/chunkserver-0/chunks/*.chunk >"$TMP/scan-local" ||
  fail "non-zero bytes after the last frame of a chunk: $(cat "$TMP/scan-local")"
if awk '{ split($3, g, "="); if (g[2] != 0) bad = 1 } END { exit bad ? 0 : 1 }' "$TMP/scan-local"; then
  fail "padding or garbage found before the end of a chunk: $(cat "$TMP/scan-local")"
fi
GLOBALS=(--chunkservers 1)
run_gfs fsck --verify
assert_ok "fsck --verify after the R = 1 job"
# The retired switches are refused with a line saying why.
for sw in --short-circuit-appends --no-short-circuit-appends; do
  run_gfs "$sw" ls /
  assert_fails "$sw"
  assert_one_error_line "$sw" "always go through the chunkservers"
done
DATA="$saved_data"

# Rank mode: the same job launched by mpirun directly (1 master, 3
# chunkservers, 2 clients: 1 producer, 1 consumer).
mpirun_rank 6 --data-dir "$DATA" --chunkservers 3 producer-consumer --file /rank-mode.log \
  --producers 1 --records 300
assert_contains "$OUT" "every record arrived exactly once" "rank-mode summary"
assert_contains "$ERR" "gfs: exit status 0" "rank-mode status line"

# The quarter-chunk limit: with 64 KiB chunks a frame may be 16384 bytes, so
# the largest payload is 16384 - 32.
GLOBALS=(--chunk-size 64K)
head -c $((16384 - 32)) /dev/urandom >"$TMP/max"
head -c $((16384 - 31)) /dev/urandom >"$TMP/over"
run_gfs append /limits "$TMP/over"
assert_fails "a frame one byte over a quarter chunk"
assert_contains "$ERR" "16352" "the error names the largest payload"
assert_one_error_line
run_gfs append /limits "$TMP/max"
assert_ok "a frame exactly a quarter chunk"

# Two CLI appends: two distinct records (each run is its own producer).
echo "first" >"$TMP/r1"
echo "second record" >"$TMP/r2"
run_gfs append /two "$TMP/r1"
assert_ok "append 1"
off1="$OUT"
run_gfs append /two "$TMP/r2"
assert_ok "append 2"
off2="$OUT"
[[ "$off1" =~ ^[0-9]+$ && "$off2" =~ ^[0-9]+$ && "$off1" != "$off2" ]] || fail "offsets '$off1' '$off2'"
run_gfs records /two
assert_ok "records /two"
assert_eq 2 "$(grep -c . <<<"$OUT")" "two records"
grep -Eq '^[0-9]+ 0 6$' <<<"$OUT" || fail "record of 6 bytes with sequence 0 missing: $OUT"
grep -Eq '^[0-9]+ 0 14$' <<<"$OUT" || fail "record of 14 bytes with sequence 0 missing: $OUT"
assert_eq 2 "$(awk '{print $1}' <<<"$OUT" | sort -u | grep -c .)" "two producer ids"
pass
