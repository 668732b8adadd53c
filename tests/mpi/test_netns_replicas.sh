#!/bin/bash
# A real job across four test hosts (jobs/netns-cluster: network namespaces
# with their own host names and node-local data directories, TCP between
# them): the launcher runs on h0 with the cluster's hostfile, so the master
# is on h0 and there is one chunkserver per host. A (scaled) 200 MiB file,
# R = 3, 8 MiB chunks: put, get in a second job, identical bytes; fsck
# --json shows every chunk on 3 distinct chunkservers on 3 distinct hosts;
# the get reads short-circuit only from the chunkserver on its own host;
# each host's own directory holds only its own chunkserver's data (and h0's
# the master's); exit statuses come back through the launcher. Creating the
# namespaces must work here: if it does not, the test fails with the reason.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

NC="$(cd "$HERE/../.." && pwd)/jobs/netns-cluster"
export GFS_NETNS_NAME="r$$"
export GFS_NETNS_STATE="$TMP/state"
export GFS_NETNS_DATA="$TMP/hosts"
export GFS_BIN="$GFS"
HOSTS_DIR="$GFS_NETNS_DATA/$GFS_NETNS_NAME"
trap '_rc=$?; "$NC" down >/dev/null 2>&1 || true; (exit $_rc); _cleanup' EXIT

run_cmd "$NC" up 4
if ((RC != 0)); then
  fail "cannot create the test hosts (network namespaces): $(grep -m1 . "$ERR_FILE")"
fi

# ncgfs ARGS...: gfs across the hosts (stdin from /dev/null).
ncgfs() { run_cmd "$NC" gfs --replication 3 --chunk-size 8M "$@"; }

MB="$(scaled_mb 200)"
SIZE=$((MB * 1048576))
log "file size $MB MiB ($SIZE bytes), scale $SCALE"
rand_file "$TMP/in.bin" "$SIZE"

ncgfs put "$TMP/in.bin" /big.bin
assert_ok "put across the hosts"
ncgfs --stats-dir "$TMP/sg" get /big.bin "$TMP/out.bin"
assert_ok "get across the hosts"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get after put (second job)"
# Short-circuit reads only on the client's own host: the client runs on h0
# (rank 5, the first client), and of the chunkservers (ranks 1..4 on h0..h3)
# only h0's answers read-local requests; every other byte came over TCP.
python3 "$STATS_PY" read "$TMP/sg" "$SIZE" 64 || fail "read path of the get"
python3 - "$TMP/sg" <<'EOF' || fail "short-circuit reads off the client's host"
import json, sys
st = {r: json.load(open("%s/rank-%d.json" % (sys.argv[1], r))) for r in range(6)}
local = lambda r: int(st[r].get("counters", {}).get("local_reads", 0))
assert st[5]["role"] == "client", st[5]["role"]
for r in (2, 3, 4):
    if local(r):
        sys.exit("chunkserver rank %d (another host) answered %d read-local requests" % (r, local(r)))
got = int(st[5].get("counters", {}).get("bytes_read_local", 0))
if local(1) == 0 or got == 0:
    sys.exit("no short-circuit read from h0's chunkserver (answers %d, bytes %d)" % (local(1), got))
print("short-circuit: %d bytes, %d answers, all from h0's chunkserver" % (got, local(1)))
EOF

# Where the ranks ran: one chunkserver per host, named by its host.
ncgfs report --json
assert_ok "report"
python3 - "$OUT_FILE" <<'EOF' || fail "report: want one chunkserver on each of h0..h3"
import json, sys
r = json.load(open(sys.argv[1]))
hosts = sorted(c["host"] for c in r["chunkservers"])
if hosts != ["h0", "h1", "h2", "h3"]:
    sys.exit("chunkserver hosts: %s" % hosts)
EOF

# Every chunk: 3 replicas on 3 chunkservers on 3 different hosts.
ncgfs fsck --json /big.bin
assert_ok "fsck"
python3 - "$OUT_FILE" "$(((SIZE + 8388607) / 8388608))" <<'EOF' || fail "fsck: replicas not on 3 distinct hosts"
import json, sys
r = json.load(open(sys.argv[1]))
want_chunks = int(sys.argv[2])
(f,) = r["files"]
chunks = f["chunk_list"]
if len(chunks) != want_chunks:
    sys.exit("%d chunks, want %d" % (len(chunks), want_chunks))
for c in chunks:
    ranks = {x["rank"] for x in c["replicas"]}
    hosts = {x["host"] for x in c["replicas"]}
    if len(c["replicas"]) != 3 or len(ranks) != 3 or len(hosts) != 3:
        sys.exit("chunk %s: replicas %s" % (c["index"], c["replicas"]))
    if not hosts <= {"h0", "h1", "h2", "h3"}:
        sys.exit("chunk %s: hosts %s" % (c["index"], sorted(hosts)))
print("%d chunks, each on 3 hosts" % len(chunks))
EOF

# Node-local data: host hI's directory holds chunkserver-I only; the
# master's directory is on h0.
for i in 0 1 2 3; do
  got="$(find "$HOSTS_DIR/h$i" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' ')"
  want="chunkserver-$i "
  ((i == 0)) && want="chunkserver-0 master "
  assert_eq "$want" "$got" "h$i's node-local directory"
done

# Exit statuses travel back through the launcher and nsenter.
ncgfs test -e /no-such-file
assert_exit 1 "test -e of a missing file"
ncgfs get /no-such-file "$TMP/x"
assert_exit 1 "get of a missing file"
ncgfs ls --no-such-option
assert_exit 2 "usage error"
assert_no_leftovers "$HOSTS_DIR"

pass
