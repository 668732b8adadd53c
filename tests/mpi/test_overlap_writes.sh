#!/bin/bash
# Concurrent overlapping writes from 4 client ranks leave every replica
# byte-identical ("consistent but undefined"); serial writes are "defined".
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
PROG="$GFS_TEST_PROGRAMS/overlap_writes"
run_cmd timeout 300 mpirun --allow-run-as-root --oversubscribe --enable-recovery -q -np 8 \
  "$PROG" "$DATA" "$TMP/result"
[[ -s "$TMP/result" ]] || fail "no result written: $ERR"
assert_eq OK "$(cat "$TMP/result")" "test program verdict"
# Every chunk of /overlap and /serial: 3 replicas with identical bytes.
declare -A seen=()
for f in "$DATA"/chunkserver-*/chunks/*.chunk; do
  h="$(basename "$f" .chunk)"
  seen[$h]=$(( ${seen[$h]:-0} + 1 ))
done
[[ ${#seen[@]} -ge 6 ]] || fail "expected at least 6 chunks, found ${#seen[@]}"
for h in "${!seen[@]}"; do
  assert_eq 3 "${seen[$h]}" "replicas of chunk $h"
  sums="$(sha256sum "$DATA"/chunkserver-*/chunks/"$h".chunk | awk '{print $1}' | sort -u | grep -c .)"
  assert_eq 1 "$sums" "distinct contents among the replicas of chunk $h"
done
pass
