#!/bin/bash
# The Transport contract over MpiTransport in two real ranks: the same checks
# the unit tests run over the in-process fabric (TransportConformance.*).
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
run_cmd timeout 180 mpirun --allow-run-as-root --oversubscribe -q -np 2 \
  "$GFS_TEST_PROGRAMS/transport_conformance" "$TMP/result"
[[ -s "$TMP/result" ]] || fail "no result written: $ERR"
for check in fifo-and-counters tails-join both-ways-at-once idle-calls-return; do
  line=$(grep "^$check " "$TMP/result" || true)
  [[ -n "$line" ]] || fail "check $check did not run: $(cat "$TMP/result")"
  assert_eq "$check OK" "$line" "transport conformance"
done
assert_ok "transport_conformance exit status"
pass
