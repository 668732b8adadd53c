#!/bin/bash
# The append benchmark runs end to end on tiny sizes and writes one JSON
# object per result (the numbers themselves are not asserted: speed is
# measured in bench/, not tested).
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
BENCH="$(dirname "$GFS")/bench/gfs-append-bench"
[[ -x "$BENCH" ]] || fail "benchmark binary missing: $BENCH"
run_cmd timeout 300 mpirun --allow-run-as-root --oversubscribe --enable-recovery -q -np 7 \
  "$BENCH" --data-dir "$DATA" --h5-dir "$TMP" --mib 4 --record-size 4096 --producers 1,2 \
  --replication 1,2 --json "$TMP/bench.json"
echo "$OUT"
# R=1: stream, append x2, h5pt; R=2: stream, append x2.
assert_eq 7 "$(grep -c '"api"' "$TMP/bench.json")" "JSON result lines"
python3 - "$TMP/bench.json" <<'PY' || fail "bad JSON lines"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    for k in ("api", "workload", "ranks", "replication", "bytes", "mb_per_s", "ratio_vs"):
        assert k in r, (k, r)
    assert r["mb_per_s"] > 0 and r["bytes"] == 4 << 20, r
assert {r["api"] for r in rows} == {"stream", "append", "hdf5-pt"}, rows
PY
pass
