#!/bin/bash
# Errors a user meets: missing paths fail fast with one line and exit 1; bad
# options fail with one clear line and no hang; unknown command exits 2;
# --help; rank mode (mpirun -np N gfs ...) works and too few ranks fail cleanly.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

rand_file "$TMP/f" 123457

# A command that only reads refuses a data directory that holds no store
# (a mistyped --data-dir), and creates nothing there.
run_gfs ls /
assert_exit 1 "ls on an empty data directory"
assert_one_error_line "no store at $DATA"
[[ ! -e "$DATA/master" ]] || fail "ls created a store in $DATA"
run_gfs mkdir -p /
assert_ok "mkdir -p / creates the store"

# get of a missing path: fast, exit 1, exactly one line naming command, path, reason.
run_gfs get /missing "$TMP/x"
assert_exit 1 "get of a missing path"
assert_one_error_line "gfs: get: /missing:" "no such file"
assert_lt "$ELAPSED" 60 "get of a missing path must fail fast (seconds)"
[[ ! -e "$TMP/x" ]] || fail "get of a missing path created the local file $TMP/x"
assert_no_leftovers

run_gfs cat /missing
assert_exit 1 "cat of a missing path"
assert_one_error_line "gfs: cat: /missing:" "no such file"

run_gfs put "$TMP/nonexistent-local" /p
assert_fails "put of a missing local file"
assert_one_error_line "nonexistent-local"

# R > K
run_gfs --chunkservers 3 --replication 5 ls /
assert_fails "--replication 5 with --chunkservers 3"
assert_one_error_line "gfs:"
assert_contains "$ERR" "replication" "R > K error names the option"
assert_lt "$ELAPSED" 60 "R > K error must not hang"

# retired switches: appends always go through the chunkservers
run_gfs --short-circuit-appends ls /
assert_fails "--short-circuit-appends"
assert_one_error_line "gfs:"
assert_contains "$ERR" "always go through the chunkservers" "the error says why"

# bad values
run_gfs --chunk-size 12Q ls /
assert_fails "--chunk-size 12Q"
assert_one_error_line "gfs:"
assert_contains "$ERR" "12Q" "bad chunk size error names the value"
run_gfs --chunk-size 0 ls /
assert_fails "--chunk-size 0"
run_gfs --writeback 3X ls /
assert_fails "--writeback 3X"
assert_one_error_line "gfs:"
assert_contains "$ERR" "3X" "bad writeback size error names the value"
run_gfs --chunkservers 0 ls /
assert_fails "--chunkservers 0"
assert_one_error_line "gfs:"
run_gfs --chunkservers abc ls /
assert_exit 2 "--chunkservers abc is a usage error"
run_gfs --no-such-option ls /
assert_exit 2 "unknown global option"
assert_one_error_line "gfs:"

# usage errors exit 2
run_gfs frobnicate /x
assert_exit 2 "unknown command"
assert_one_error_line "gfs:" "frobnicate"
run_gfs get /only-one-arg
assert_exit 2 "get with a missing argument"
run_gfs
assert_exit 2 "no command"

# help
run_gfs --help
assert_ok "gfs --help"
assert_contains "$OUT" "put" "--help lists put"
assert_contains "$OUT" "get" "--help lists get"
assert_contains "$OUT" "--chunk-size" "--help lists the global options"
run_gfs put --help
assert_ok "gfs put --help"
assert_contains "$OUT" "put" "put --help"

# Rank mode: the user runs mpirun (master + 3 chunkservers + 1 client).
RDATA="$TMP/rankdata"
mpirun_rank 5 --data-dir "$RDATA" put "$TMP/f" /r.bin
assert_ok "rank mode put (mpirun exit status)"
mpirun_rank 5 --data-dir "$RDATA" get /r.bin "$TMP/r.out"
assert_ok "rank mode get"
assert_same_file "$TMP/f" "$TMP/r.out" "rank mode put/get"
n="$(find "$RDATA" -maxdepth 1 -type d -name 'chunkserver-*' | wc -l)"
assert_eq 3 "$n" "rank mode -np 5: chunkserver directories"
# the launcher reads what rank mode wrote (same layout)
DATA="$RDATA" run_gfs cat /r.bin
assert_ok "launcher reads rank-mode data"
assert_same_file "$TMP/f" "$OUT_FILE" "launcher cat of rank-mode file"

# Rank mode error: one error line from one rank, no hang.
mpirun_rank 5 --data-dir "$RDATA" get /missing "$TMP/y"
n="$(grep -c '^gfs: get: /missing:' "$ERR_FILE" || true)"
assert_eq 1 "$n" "rank mode: lines 'gfs: get: /missing:' on stderr"
assert_lt "$ELAPSED" 60 "rank mode error must be fast"

# Too few ranks: one clear line, no hang.
GFS_TIMEOUT=120 mpirun_rank 2 --data-dir "$TMP/few" ls /
assert_contains "$ERR" "gfs:" "too few ranks error"
n="$(grep -c '^gfs:' "$ERR_FILE" || true)"
assert_eq 1 "$n" "too few ranks: number of 'gfs:' lines on stderr (one rank prints)"
grep -Eiq 'rank|process|-np' "$ERR_FILE" || fail "too few ranks: the error does not say what is missing: $ERR"
assert_no_leftovers "$TMP/few"

pass
