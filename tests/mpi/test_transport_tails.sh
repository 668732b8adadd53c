#!/bin/bash
# Push slices sent from the caller's memory (MpiTransport::SendWithTail):
# joined byte-exact at the receiver; a sender stalled between a head and its
# tail loses that message only, and the late tail is never taken for a message;
# a sender that dies mid-message is given up at once, not after the timeouts.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
PROG="$GFS_TEST_PROGRAMS/transport_tails"
run_cmd timeout 120 mpirun --allow-run-as-root --oversubscribe -q -np 2 "$PROG" "$TMP/result"
[[ -s "$TMP/result" ]] || fail "no result written: $ERR"
assert_eq OK "$(cat "$TMP/result")" "test program verdict"
assert_ok "transport_tails"
# A sender that dies mid-message does not hold the receiver (mode dead).
run_cmd timeout 120 mpirun --allow-run-as-root --oversubscribe --enable-recovery -q -np 2 \
  "$PROG" "$TMP/result-dead" dead
# The receiver says how many of the dead sender's receives it gave up: one at
# least (the head whose tail never came).
echo "$ERR" | grep -q "transport_tails dead: given up [1-9]" ||
  fail "the receiver did not report giving up the dead sender's receive: $ERR"
[[ -s "$TMP/result-dead" ]] || fail "no result written (dead sender): $ERR"
assert_eq OK "$(cat "$TMP/result-dead")" "test program verdict (dead sender)"
pass
