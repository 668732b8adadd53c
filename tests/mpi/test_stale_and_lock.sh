#!/bin/bash
# A replica that missed writes in an earlier job is stale: never read,
# removed when its chunkserver comes back. A second job on a data directory
# that a running job holds fails at once with a clear error.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

# Job 1: 3 chunkservers, R = 3.
GLOBALS=(--chunk-size 1M)
rand_file "$TMP/v1.bin" $((2 * 1048576))
run_gfs put "$TMP/v1.bin" /f
assert_ok "put v1"

# Job 2: only 2 chunkservers (chunkserver-2 is away): overwrite the file.
rand_file "$TMP/v2.bin" $((2 * 1048576))
GLOBALS=(--chunk-size 1M --chunkservers 2 --replication 2)
run_gfs write /f 0 "$TMP/v2.bin"
assert_ok "overwrite with one replica away"

# Job 3: all 3 back. chunkserver-2 holds version-1 replicas: stale (seen and
# removed when it registers).
GLOBALS=(--chunk-size 1M)
run_gfs fsck --json /f
# Re-replication may already be copying good replicas back to chunkserver-2:
# under-replicated (exit 4) or, if it was quick, healthy.
[[ "$RC" == 4 || "$RC" == 0 ]] || fail "fsck exit $RC: $OUT $ERR"
python3 - "$OUT" <<'PY' || fail "fsck: $OUT"
import json, sys
f = json.loads(sys.argv[1])["files"][0]
assert f["stale_replicas"] == 2 and f["missing"] == 0, f
for c in f["chunk_list"]:
    assert len(c["replicas"]) >= 2 and c["version"] >= 2, c
PY
for i in 1 2; do
  run_gfs get /f "$TMP/out$i.bin"
  assert_ok "get $i"
  assert_same_file "$TMP/v2.bin" "$TMP/out$i.bin" "get $i returns the new bytes, never the stale ones"
done
# Re-replication brings the file back to 3 current replicas; what
# chunkserver-2 holds now are fresh copies of the new bytes.
run_gfs --heartbeat-ms 200 fsck --wait 60 /f
assert_ok "fsck --wait: full replication again"
for k in 0 1; do
  h="$(printf '%016x' $((k + 1)))"
  want="$(dd if="$TMP/v2.bin" bs=1048576 skip=$k count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
  got="$(sha256sum "$DATA/chunkserver-2/chunks/$h.chunk" | cut -d' ' -f1)"
  assert_eq "$want" "$got" "chunk $k on chunkserver-2 after re-replication"
done

# The lock: a job holding DATA (a put waiting on stdin), then a second job.
("$GFS" --data-dir "$DATA" put - /held >/dev/null 2>&1 < <(sleep 20) || true) &
holder=$!
for _ in $(seq 1 100); do
  pgrep -f -- "--status-file .* put - /held" >/dev/null && break
  sleep 0.1
done
sleep 1
run_gfs ls /
assert_fails "second job on a held data directory"
assert_contains "$ERR" "in use by another job"
assert_one_error_line
[[ "${ELAPSED%.*}" -lt 15 ]] || fail "the second job took ${ELAPSED}s to fail"
pkill -f "sleep 20" || true
wait "$holder" 2>/dev/null || true
pass
