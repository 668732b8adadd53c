#!/bin/bash
# Racks: six test hosts (jobs/netns-cluster up 6 --racks 2: h0,h2,h4 in
# rack0, h1,h3,h5 in rack1, a topology file the cluster's `gfs` passes as
# --topology). A put at R = 3: every chunk's replicas are on 3 hosts and
# both racks; report and fsck (text and --json) show each chunkserver's and
# replica's host and rack as the topology file says. A reader on h5 reads
# each chunk from the nearest replica (h5, else rack1). A bad topology file is
# refused by the launcher before mpirun starts, with its line. Creating the
# namespaces must work here: if it does not, the test fails with the reason.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

NC="$(cd "$HERE/../.." && pwd)/jobs/netns-cluster"
export GFS_NETNS_NAME="k$$"
export GFS_NETNS_STATE="$TMP/state"
export GFS_NETNS_DATA="$TMP/hosts"
export GFS_BIN="$GFS"
HOSTS_DIR="$GFS_NETNS_DATA/$GFS_NETNS_NAME"
trap '_rc=$?; "$NC" down >/dev/null 2>&1 || true; (exit $_rc); _cleanup' EXIT

run_cmd "$NC" up 6 --racks 2
if ((RC != 0)); then
  fail "cannot create the test hosts (network namespaces): $(grep -m1 . "$ERR_FILE")"
fi
TOPO="$GFS_NETNS_STATE/$GFS_NETNS_NAME/topology"
assert_eq "h0 rack0 h1 rack1 h2 rack0 h3 rack1 h4 rack0 h5 rack1" \
  "$(tr '\n' ' ' <"$TOPO" | sed 's/ $//')" "topology file"

# ncgfs ARGS...: gfs across the hosts, short heartbeats.
ncgfs() { run_cmd "$NC" gfs --replication 3 --chunk-size 1M --heartbeat-ms 200 "$@"; }

MB="$(scaled_mb 24)"
SIZE=$((MB * 1048576))
CHUNKS=$(((SIZE + 1048575) / 1048576))
log "file size $MB MiB, $CHUNKS chunks"
rand_file "$TMP/in.bin" "$SIZE"
ncgfs mkdir /racks
assert_ok "mkdir"
ncgfs put "$TMP/in.bin" /racks/a.bin
assert_ok "put across 6 hosts on 2 racks"

# fsck --json: 3 replicas per chunk on 3 hosts spanning both racks, and each
# replica's rack is its host's in the topology file.
ncgfs fsck --json /racks
assert_ok "fsck --json"
python3 - "$OUT_FILE" "$CHUNKS" "$TOPO" <<'EOF' || fail "fsck: a chunk not spread over both racks"
import json, sys
r = json.load(open(sys.argv[1]))
want = int(sys.argv[2])
rack_of = dict(l.split() for l in open(sys.argv[3]) if l.strip())
(f,) = r["files"]
chunks = f["chunk_list"]
if len(chunks) != want:
    sys.exit("%d chunks, want %d" % (len(chunks), want))
for c in chunks:
    reps = c["replicas"]
    hosts = {x["host"] for x in reps}
    racks = {x["rack"] for x in reps}
    if len(reps) != 3 or len(hosts) != 3 or racks != {"rack0", "rack1"}:
        sys.exit("chunk %s: replicas %s" % (c["index"], reps))
    for x in reps:
        if rack_of[x["host"]] != x["rack"]:
            sys.exit("chunk %s: replica on %s shown in %s" % (c["index"], x["host"], x["rack"]))
print("%d chunks, each on 3 hosts over both racks" % len(chunks))
EOF
# fsck's text names the host and rack of every replica.
ncgfs fsck --locations /racks
assert_ok "fsck --locations"
assert_contains "$OUT" "h1/rack1" "fsck's text shows hosts and racks"

# report: every chunkserver with its host and rack.
ncgfs report --json
assert_ok "report --json"
python3 - "$OUT_FILE" "$TOPO" <<'EOF' || fail "report: hosts and racks"
import json, sys
r = json.load(open(sys.argv[1]))
rack_of = dict(l.split() for l in open(sys.argv[2]) if l.strip())
got = sorted((c["host"], c["rack"]) for c in r["chunkservers"])
if got != sorted(rack_of.items()):
    sys.exit("chunkservers: %s" % got)
EOF
ncgfs report
assert_ok "report"
assert_contains "$OUT" "rack1" "report's text shows racks"

# Distance: a reader on h5 (rack1), through the chunkservers
# (--no-short-circuit, so every byte shows in a chunkserver's bytes_read),
# reads each chunk with a replica on h5 from h5, every other chunk from
# another host of rack1, none from rack0. Chunkservers are ranks 1..6 on
# h0..h5.
ncgfs fsck --json /racks
cp "$OUT_FILE" "$TMP/fsck.json"
run_cmd "$NC" gfs --on h5 --no-short-circuit --stats-dir "$TMP/sr" get /racks/a.bin "$TMP/out.bin"
assert_ok "get on h5"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get on h5"
python3 - "$TMP/fsck.json" "$TMP/sr" "$SIZE" <<'EOF' || fail "reads not from the nearest replica"
import json, sys
fs = json.load(open(sys.argv[1]))
size = int(sys.argv[3])
st = {r: json.load(open("%s/rank-%d.json" % (sys.argv[2], r))) for r in range(1, 8)}
got = {r: int(st[r].get("counters", {}).get("bytes_read", 0)) for r in range(1, 7)}
assert st[7]["role"] == "client", st[7]["role"]
host = {r: st[r].get("host", "h%d" % (r - 1)) for r in range(1, 7)}
on_h5 = 0
for c in fs["files"][0]["chunk_list"]:
    n = min(1048576, size - c["index"] * 1048576)
    if any(x["host"] == "h5" for x in c["replicas"]):
        on_h5 += n
print("bytes read per chunkserver h0..h5:", [got[r] for r in range(1, 7)], "; on h5:", on_h5)
if got[1] or got[3] or got[5]:
    sys.exit("rack0's chunkservers served reads to a reader on rack1")
if got[6] != on_h5:
    sys.exit("h5's chunkserver served %d bytes, its chunks hold %d" % (got[6], on_h5))
if got[2] + got[4] + got[6] != size:
    sys.exit("rack1 served %d bytes of %d" % (got[2] + got[4] + got[6], size))
EOF

# A bad topology file: refused by the launcher with its line, exit 2.
printf 'h0 rack0\nh1\n' >"$TMP/bad-topology"
ncgfs --topology "$TMP/bad-topology" ls /
assert_exit 2 "a bad topology file"
assert_one_error_line "bad-topology:2"
assert_no_leftovers "$HOSTS_DIR"

pass
