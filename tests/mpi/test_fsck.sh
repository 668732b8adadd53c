#!/bin/bash
# fsck and report: a healthy file is healthy; a flipped byte in one replica
# is found by fsck --verify (that replica no longer counts, exit 4) and by a
# read that touches it (the reader gets the right bytes from another replica).
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
GLOBALS=(--chunk-size 1M)
rand_file "$TMP/in.bin" $((3 * 1048576 + 4321))
run_gfs put "$TMP/in.bin" /f
assert_ok "put"

run_gfs fsck
assert_ok "fsck of a healthy store"
assert_contains "$OUT" "status: healthy"
run_gfs fsck --json /f
assert_ok "fsck --json"
assert_eq healthy "$(json_get status <<<"$OUT")" "status"
assert_eq 4 "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["healthy"])' <<<"$OUT")" "healthy chunks"

run_gfs report --json
assert_ok "report"
python3 - "$OUT" "$DATA" <<'PY' || fail "report: $OUT"
import json, os, sys
r = json.loads(sys.argv[1])
assert len(r["chunkservers"]) == 3, r
assert all(s["state"] == "alive" for s in r["chunkservers"]), r
assert sum(s["chunks"] for s in r["chunkservers"]) == 12, r
assert r["chunks"] == 4 and r["under_replicated"] == 0 and r["missing"] == 0, r
t = r["total"]
assert t["chunkservers"] == 3 and t["alive"] == 3, t
assert t["used"] == sum(s["used"] for s in r["chunkservers"]), t
assert t["capacity"] == sum(s["capacity"] for s in r["chunkservers"]), t
# The three chunkservers share one file system: its free space counts once.
st = os.statvfs(sys.argv[2])
fs_free = st.f_bavail * st.f_frsize
assert abs(t["free"] - fs_free) < fs_free * 0.05 + (64 << 20), (t, fs_free)
assert all(len(s["id"]) == 16 and s["dir"].startswith("chunkserver-") for s in r["chunkservers"]), r
PY

run_gfs fsck /missing
assert_fails "fsck of a missing path"
assert_one_error_line

# Flip one byte in the middle of one replica of chunk 2 (no read touches it).
victim="$(ls "$DATA"/chunkserver-1/chunks/*.chunk | sort | sed -n 2p)"
python3 - "$victim" <<'PY'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(200000)
    b = f.read(1)
    f.seek(200000)
    f.write(bytes([b[0] ^ 0x5A]))
PY
run_gfs fsck --verify --json
assert_exit 4 "fsck --verify finds the corrupt replica (under-replicated: exit 4)"
python3 - "$OUT" <<'PY' || fail "fsck --verify: $OUT"
import json, sys
r = json.loads(sys.argv[1])
assert r["status"] == "under-replicated", r
f = r["files"][0]
assert f["corrupt_replicas"] == 1 and f["under_replicated"] == 1 and f["missing"] == 0, f
PY

# In one job: verify finds it, the master clones a good replica over it, and
# --wait sees full replication again.
GLOBALS=(--chunk-size 1M --heartbeat-ms 200)
victim2="$(ls "$DATA"/chunkserver-*/chunks/0000000000000002.chunk | head -1)"
python3 - "$victim2" <<'PY'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(300000)
    b = f.read(1)
    f.seek(300000)
    f.write(bytes([b[0] ^ 0xA5]))
PY
run_gfs fsck --verify --wait 60 --json
assert_ok "fsck --verify --wait: repaired by re-replication in the same job"
assert_eq healthy "$(json_get status <<<"$OUT")" "status after repair"
expect="$(dd if="$TMP/in.bin" bs=1048576 skip=1 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
n=0
for f in "$DATA"/chunkserver-*/chunks/0000000000000002.chunk; do
  assert_eq "$expect" "$(sha256sum "$f" | cut -d' ' -f1)" "replica $f of chunk 2 after repair"
  n=$((n + 1))
done
assert_eq 3 "$n" "replicas of chunk 2 after repair"
GLOBALS=(--chunk-size 1M)

# Reads never return the bad bytes (the corrupt replica, if still there, fails
# its checksum and the reader uses another).
for i in 1 2 3; do
  run_gfs get /f "$TMP/out$i.bin"
  assert_ok "get $i"
  assert_same_file "$TMP/in.bin" "$TMP/out$i.bin" "get $i after corruption"
done
pass
