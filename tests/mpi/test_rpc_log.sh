#!/bin/bash
# The storage ranks' RPC log: after a put, the master's and the
# chunkservers' rpc.log hold one text line per request and reply (the
# create at the master, the pushed data at a chunkserver), no file data;
# `report --rpcs` shows the master's latest; --rpc-log-mb 0 writes none.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
GLOBALS=(--chunkservers 2 --replication 2 --chunk-size 1M)
rand_file "$TMP/in.bin" $((3 * 1048576))
run_gfs put "$TMP/in.bin" /f.bin
assert_ok "put"
[[ -s "$DATA/master/rpc.log" ]] || fail "no rpc.log in the master's directory"
[[ -s "$DATA/chunkserver-1/rpc.log" ]] || fail "no rpc.log in chunkserver-1's directory"
grep -q " in  req   create from " "$DATA/master/rpc.log" || fail "the master's log has no create"
grep -q " out reply create to " "$DATA/master/rpc.log" || fail "the master's log has no create reply"
grep -qE " (in |out) req   push-data " "$DATA"/chunkserver-*/rpc.log ||
  fail "no chunkserver logged the pushed data"
# Text lines only: no byte of the file reached the logs.
if LC_ALL=C grep -qP '[^\x20-\x7e]' "$DATA"/master/rpc.log "$DATA"/chunkserver-*/rpc.log; then
  fail "an RPC log holds bytes that are not text"
fi
run_gfs report --rpcs --json
assert_ok "report --rpcs --json"
python3 - "$OUT_FILE" <<'PY' || fail "report --rpcs --json has no recent_rpcs"
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["recent_rpcs"]) > 0 and all(" req " in x or " reply " in x for x in r["recent_rpcs"]), r
PY
run_gfs report --rpcs
assert_ok "report --rpcs"
assert_contains "$OUT" "recent requests and replies at the master" "report's heading"
# Off: a new store with --rpc-log-mb 0 has no log.
DATA="$TMP/data2"
GLOBALS=(--chunkservers 1 --rpc-log-mb 0)
run_gfs mkdir /d
assert_ok "mkdir with the RPC log off"
if find "$DATA" -name 'rpc.log*' | grep -q .; then fail "--rpc-log-mb 0 wrote a log"; fi
pass
