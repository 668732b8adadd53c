#!/bin/bash
# Bad input, table-driven: for each case, one line on stderr (containing the
# needle), the documented exit status (doc/options.md: 2 usage, 1 the
# command failed), and no hang (run_gfs's timeout). Usage errors are found
# before any MPI job starts.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

LONG="/$(printf 'a%.0s' $(seq 1 10000))"
rand_file "$TMP/f" 1000
n=0

# bad EXIT NEEDLE ARGS...: run gfs ARGS (on $DATA) and check.
bad() {
  local want="$1" needle="$2"
  shift 2
  run_gfs "$@"
  assert_exit "$want" "case: $(printf '%q ' "$@" | head -c 200)"
  assert_one_error_line "$needle"
  n=$((n + 1))
}

# Before any store exists: usage errors, exit 2.
bad 2 "unknown command 'frobnicate'" frobnicate /x
bad 2 "no command given"
bad 2 "unknown option '--frob'" ls --frob /
bad 2 "unknown option '--frob'" --frob ls /
bad 2 "unknown option" ls -z /
bad 2 "missing arguments" put "$TMP/f"
bad 2 "missing arguments" get
bad 2 "too many arguments" mv /a /b /c
bad 2 "too many arguments" stat /a /b
bad 2 "'12Q' is not a size" --chunk-size 12Q ls /
bad 2 "--chunk-size must be a multiple of 64K" --chunk-size 0 ls /
bad 2 "--chunk-size must be a multiple of 64K" --chunk-size 100K ls /
bad 2 "less than one chunk" --capacity 10 ls /
bad 2 "is not a size" --capacity -5 ls /
bad 2 "--log-roll must be between" --log-roll 1 ls /
bad 2 "--replication must be between 1 and 64 (got 0)" --replication 0 ls /
bad 2 "--replication must be between 1 and 64 (got -1)" --replication -1 ls /
bad 2 "needs at least as many chunkservers" --replication 5 --chunkservers 3 ls /
bad 2 "'abc' is not a whole number" --chunkservers abc ls /
bad 2 "--clients must be between" --clients 0 ls /
bad 2 "--timeout-ms must be between" --timeout-ms 5 ls /
run_cmd "$GFS" --data-dir "" ls /
assert_exit 2 "an empty --data-dir"
assert_one_error_line "--data-dir must not be empty"
run_cmd "$GFS" --data-dir "$DATA" --data-dir "$DATA" ls /
assert_exit 2 "an option given twice"
assert_one_error_line "cannot be specified more than once"
bad 2 "contradict" -v -q ls /
bad 2 "paths in the store are absolute" ls relative/path
bad 2 "paths in the store are absolute" put "$TMP/f" relative
bad 2 "paths in the store are absolute" ls -- -dash
bad 2 "longer than 4096 bytes" ls "$LONG"
bad 2 "longer than 4096 bytes" put "$TMP/f" "$LONG"
bad 2 "exactly one of -e, -d, -f, -z" test /a
bad 2 "exactly one of -e, -d, -f, -z" test -e -d /a
bad 2 "running service" tail -f /a
bad 2 "-n and -c contradict" tail -n 2 -c 5 /a
bad 2 "is not a size" head -c 1Q /a
bad 2 "OFFSET must be a byte count" write /f 12x "$TMP/f"
bad 2 "--wait" fsck --wait abc
bad 2 "--file PATH is required" producer-consumer --producers 1 --records 1
bad 2 "--producers must be between" --clients 2 producer-consumer --file /p --producers 0 --records 1
bad 2 "leaves no consumer" --clients 2 producer-consumer --file /p --producers 2 --records 1
bad 2 "paths in the store are absolute" --clients 2 producer-consumer --file p --producers 1 --records 1
bad 2 "given twice" ls -R -R /
# Non-UTF-8 bytes and a newline in an option: shown escaped, on one line.
bad 2 $'unknown option \'--\\xff' ls $'--\xff\nx' /
# A command that only reads on a directory that holds no store.
bad 1 "no store at $DATA" ls /
bad 1 "no store at $DATA" cat /x
[[ ! -e "$DATA" ]] || fail "a refused command created $DATA"

# With a store: runtime errors, exit 1, one line naming the path.
run_gfs put "$TMP/f" /f
assert_ok "put"
bad 1 "gfs: get: /missing: no such file or directory" get /missing "$TMP/x"
[[ ! -e "$TMP/x" ]] || fail "a failed get created $TMP/x"
bad 1 "no such file or directory" put "$TMP/nonexistent-local" /p
bad 1 "already exists" put "$TMP/f" /f
bad 1 "already exists" get /f "$TMP/f"
bad 1 "not a directory" put -f "$TMP/f" /f/x
bad 1 'no such file or directory' stat $'/na"me\nwith newline'
assert_contains "$ERR" '/na"me\nwith newline' "the newline is shown escaped"
bad 1 'no such file or directory' stat $'/\xff\xfe'
assert_contains "$ERR" '/\xff\xfe' "bytes that are not UTF-8 are shown escaped"
bad 1 "not a record log" records /f
bad 1 "cannot delete /" rm /
log "$n cases"
pass
