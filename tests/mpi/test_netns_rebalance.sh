#!/bin/bash
# Rebalancing and setrep across test hosts (jobs/netns-cluster up 7 --racks
# 2: h0,h2,h4,h6 in rack0, h1,h3,h5 in rack1). Four files are put (put -r)
# at R = 3 on the first six hosts; a later job adds h6, whose data directory
# is new and empty: rebalancing moves replicas to it until every chunkserver's bytes of
# chunks are within --rebalance-threshold of the mean, while `balance
# --wait` asks the master every 100 ms and never sees a chunk with fewer
# than R good replicas. Every chunk still spans three hosts and both racks,
# the files read back identical, and `setrep -w 1` then `setrep -w 3` on the
# tree make every chunk's replica count follow. Creating the namespaces must
# work here: if it does not, the test fails with the reason.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

NC="$(cd "$HERE/../.." && pwd)/jobs/netns-cluster"
export GFS_NETNS_NAME="b$$"
export GFS_NETNS_STATE="$TMP/state"
export GFS_NETNS_DATA="$TMP/hosts"
export GFS_BIN="$GFS"
HOSTS_DIR="$GFS_NETNS_DATA/$GFS_NETNS_NAME"
trap '_rc=$?; "$NC" down >/dev/null 2>&1 || true; (exit $_rc); _cleanup' EXIT

run_cmd "$NC" up 7 --racks 2
if ((RC != 0)); then
  fail "cannot create the test hosts (network namespaces): $(grep -m1 . "$ERR_FILE")"
fi
TOPO="$GFS_NETNS_STATE/$GFS_NETNS_NAME/topology"
head -6 "$GFS_NETNS_STATE/$GFS_NETNS_NAME/hostfile" >"$TMP/hosts6"

# Small chunks, so that a few MiB make enough chunks to balance; short
# leases, so that the chunks just written may move in the next job.
OPTS=(--replication 3 --chunk-size 256K --heartbeat-ms 200 --lease-seconds 2
  --rebalance-threshold 0.1 --rebalance-moves 8)
ncgfs6() { run_cmd "$NC" gfs "${OPTS[@]}" --hostfile "$TMP/hosts6" --chunkservers 6 "$@"; }
ncgfs() { run_cmd "$NC" gfs "${OPTS[@]}" "$@"; }

# json_out: the command's JSON line alone (Open MPI may print a warning on
# stdout before it when the hosts are busy), in $TMP/out.json.
json_out() { grep '^{' "$OUT_FILE" | tail -1 >"$TMP/out.json"; }

# fsck_check FILE R: every chunk has R replicas on R hosts, and both racks
# when R >= 2; prints the chunks per host.
fsck_check() {
  python3 - "$1" "$2" "$TOPO" <<'EOF'
import collections, json, sys
r = json.load(open(sys.argv[1]))
want = int(sys.argv[2])
rack_of = dict(l.split() for l in open(sys.argv[3]) if l.strip())
per_host = collections.Counter()
n = 0
for f in r["files"]:
    for c in f["chunk_list"]:
        reps = c["replicas"]
        hosts = {x["host"] for x in reps}
        racks = {rack_of[x["host"]] for x in reps}
        if len(reps) != want or len(hosts) != want:
            sys.exit("%s chunk %s: replicas %s, want %d" % (f["path"], c["index"], reps, want))
        if want >= 2 and len(racks) != 2:
            sys.exit("%s chunk %s on one rack: %s" % (f["path"], c["index"], reps))
        per_host.update(hosts)
        n += 1
print("%d chunks at R = %d; chunks per host: %s" % (n, want, dict(sorted(per_host.items()))))
EOF
}

# Four files, 2 MiB each at scale 1 (8 chunks each), on h0..h5.
MB="$(scaled_mb 2)"
((MB >= 1)) || MB=1
mkdir -p "$TMP/in"
for i in 0 1 2 3; do rand_file "$TMP/in/f$i" $((MB * 1048576 + i * 65536)); done
ncgfs6 put -r "$TMP/in" /t
assert_ok "put -r of four files on h0..h5"
ncgfs6 fsck --json /t
assert_ok "fsck on h0..h5"
json_out
fsck_check "$TMP/out.json" 3 || fail "placement on h0..h5"


# h6 joins, empty: rebalancing fills it while balance samples the master.
ncgfs balance --wait 60 --json
assert_ok "balance with h6: within the threshold"
json_out
log "balance: $(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("moves", j["moves"], "samples", j["samples"], "spread", round(j["spread"], 3), "under_max", j["under_replicated_max"])' "$TMP/out.json")"
assert_eq True "$(json_get balanced <"$TMP/out.json")" "balanced"
assert_eq 0 "$(json_get under_replicated_max <"$TMP/out.json")" "chunks ever below R while rebalancing"
python3 - "$TMP/out.json" <<'EOF' || fail "rebalancing did not move replicas to h6"
import json, sys
j = json.load(open(sys.argv[1]))
if j["moves"] <= 0 or j["samples"] < 3:
    sys.exit("moves %s, samples %s" % (j["moves"], j["samples"]))
h6 = [c for c in j["chunkservers"] if c["host"] == "h6"]
if len(h6) != 1 or h6[0]["chunk_bytes"] <= 0:
    sys.exit("h6: %s" % h6)
if abs(h6[0]["chunk_bytes"] - j["mean_bytes"]) > j["threshold"] * j["mean_bytes"]:
    sys.exit("h6 holds %d bytes, the mean is %d" % (h6[0]["chunk_bytes"], j["mean_bytes"]))
EOF
ncgfs fsck --json /t
assert_ok "fsck after rebalancing"
json_out
fsck_check "$TMP/out.json" 3 || fail "placement after rebalancing"
assert_contains "$(fsck_check "$TMP/out.json" 3)" "'h6'" "h6 holds replicas"
ncgfs report
assert_ok "report"
assert_contains "$OUT" "rebalancing:" "report shows the moves"
ncgfs get -r /t "$TMP/out1"
assert_ok "get -r after rebalancing"
diff -r "$TMP/in" "$TMP/out1" >&2 || fail "files differ after rebalancing"

# setrep down and up on the tree.
ncgfs setrep -w 1 /t
assert_ok "setrep -w 1"
assert_contains "$OUT" "set for 4 files" "setrep's answer"
ncgfs fsck --json /t
assert_ok "fsck at R = 1"
json_out
fsck_check "$TMP/out.json" 1 || fail "replicas after setrep 1"
ncgfs setrep -w 3 /t
assert_ok "setrep -w 3"
ncgfs fsck --json /t
assert_ok "fsck at R = 3 again"
json_out
fsck_check "$TMP/out.json" 3 || fail "replicas after setrep 3"
ncgfs get -r /t "$TMP/out2"
assert_ok "get -r after setrep"
diff -r "$TMP/in" "$TMP/out2" >&2 || fail "files differ after setrep"

# Errors: a bad R is refused before the job starts (one line, exit 2); a
# missing path fails the job (exit 1; Open MPI may add lines of its own when
# the job's ranks end on busy hosts).
ncgfs setrep 0 /t
assert_exit 2 "setrep 0"
assert_one_error_line "replication"
ncgfs setrep 2 /nope
assert_exit 1 "setrep on a missing path"
assert_contains "$(grep -m1 '^gfs: ' "$ERR_FILE")" "/nope: no such file" "error line"
assert_no_leftovers "$HOSTS_DIR"

pass
