#!/bin/bash
# gfs-bench runs every API and workload end to end on tiny sizes: exit status
# 0, one JSON object per (api, workload, op) with the documented fields, zero
# verification errors (speed is not asserted), under mpirun (rank mode) and
# started directly (launcher mode: layout, --dry-run, exit status). Then
# bench/plot turns the JSON into PNGs, when matplotlib or gnuplot is installed.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
BENCH="$(dirname "$GFS")/gfs-bench"
PLOT="$HERE/../../bench/plot"
[[ -x "$BENCH" ]] || fail "benchmark binary missing: $BENCH"
mkdir -p "$TMP/base"

# 1 master + 2 chunkservers + 2 clients, R=2, one shared file.
run_cmd mpirun --allow-run-as-root --oversubscribe -q -np 5 \
  "$BENCH" --data-dir "$DATA" --chunkservers 2 --replication 2 --dir "$TMP/base" \
  -t 64K -b 1M -s 2 --api gfs,mpiio,posix,hdf5 --workload all --reps 1 \
  --meta-files 20 --memcpy-mib 16 --json "$TMP/bench.json"
echo "$OUT"
assert_ok "shared-file run"
assert_contains "$OUT" "workload" "table header"
python3 - "$TMP/bench.json" <<'PY' || fail "bad JSON lines"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ("api", "workload", "ranks", "replication", "bytes", "ratio_vs", "transfer", "block",
        "segments", "file_per_process", "reps", "median", "min", "max", "errors")
for r in rows:
    for k in keys:
        assert k in r, (k, r)
    assert r["errors"] == 0, r
    assert ("mb_per_s" in r) != ("ops_per_s" in r), r
    assert r.get("mb_per_s", r.get("ops_per_s")) > 0, r
    assert isinstance(r["ratio_vs"], dict), r
    assert r["transfer"] == 65536 and r["block"] == 1 << 20 and r["segments"] == 2, r
    assert r["file_per_process"] is False, r
have = {(r["api"], r["workload"], r.get("op", "")) for r in rows}
want = set()
for api in ("gfs", "mpiio", "posix", "hdf5"):
    want |= {(api, "write", ""), (api, "read", "")}
for api in ("gfs", "posix"):
    want |= {(api, "append", ""), (api, "append", "stream")}
    want |= {(api, "meta", op) for op in ("create", "stat", "rename", "delete")}
assert have == want, (sorted(want - have), sorted(have - want))
for r in rows:
    if r["workload"] in ("write", "read"):
        assert r["bytes"] == 2 * 2 * (1 << 20), r            # ranks * segments * block
        assert set(r["ratio_vs"]) == {"gfs", "mpiio", "posix", "hdf5"} - {r["api"]}, r
        assert r["ranks"] == 2, r
    if r["api"] == "gfs":
        assert r["replication"] == 2, r
gw = [r for r in rows if r["api"] == "gfs" and r["workload"] == "write"][0]
assert "mpiio/2" in gw["ratio_vs_limit"] and "memcpy" in gw["ratio_vs_limit"], gw
ga = [r for r in rows if r["api"] == "gfs" and r["workload"] == "append" and not r["op"]][0]
assert "stream" in ga["ratio_vs"], ga
print(len(rows), "results ok")
PY
assert_no_leftovers
ls "$TMP/base" | grep -q . && fail "baseline files left behind: $(ls "$TMP/base")"

# File per process, write + read only, 2 reps, 3 clients on one chunkserver.
# Every write goes through the chunkserver (it alone writes chunk files); the
# read phase checks every byte.
run_cmd mpirun --allow-run-as-root --oversubscribe -q -np 5 \
  "$BENCH" --data-dir "$TMP/data2" --stats-dir "$TMP/s2" --chunkservers 1 --dir "$TMP/base" \
  -t 32K -b 256K -s 3 -F --api gfs,posix,mpiio,hdf5 --workload write,read --reps 2 \
  --memcpy-mib 16 --json "$TMP/fpp.json"
assert_ok "file-per-process run"
python3 - "$TMP/fpp.json" <<'PY' || fail "bad JSON lines (-F)"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 8, rows
for r in rows:
    assert r["file_per_process"] is True and r["reps"] == 2 and r["ranks"] == 3, r
    assert r["errors"] == 0 and r["bytes"] == 3 * 3 * 256 * 1024, r
    assert r["min"] <= r["median"] <= r["max"], r
PY
assert_no_leftovers "$TMP/data2"
# 3 clients x 2 reps x 3 segments x 256K, each byte written by the chunkserver.
assert_eq $((3 * 2 * 3 * 256 * 1024)) "$(python3 "$STATS_PY" sum "$TMP/s2" chunkserver bytes_written)" \
  "every byte written by the chunkserver"

# Bad options: one line, exit status 2, nothing run.
run_cmd mpirun --allow-run-as-root --oversubscribe -q -np 3 \
  "$BENCH" --data-dir "$TMP/data3" --api gfs,nfs
assert_fails "unknown api"
assert_contains "$ERR" "unknown api 'nfs'"

# Launcher mode: run directly, gfs-bench starts its own job through gfs's
# launcher (same layout, options and exit status as gfs), every client rank
# taking part. --dry-run prints the mpirun line and starts nothing.
run_cmd "$BENCH" --dry-run --data-dir "$TMP/data4" --clients 3 --replication 2 \
  -t 64K -b 256K --api gfs
assert_ok "--dry-run"
assert_contains "$OUT" "mpirun -q --enable-recovery" "launch line"
assert_contains "$OUT" " -np 6 " "1 master + 2 chunkservers (K = R) + 3 clients"
assert_contains "$OUT" "--chunkservers 2 --clients 3 bench -t 64K -b 256K --api gfs" "pinned layout"
[[ -e "$TMP/data4" ]] && fail "--dry-run created the data directory"

run_cmd "$BENCH" --data-dir "$TMP/data4" --clients 3 --replication 2 --dir "$TMP/base" \
  -t 64K -b 256K --api gfs,posix --workload write,read,append --reps 1 --memcpy-mib 16 \
  --json "$TMP/launch.json"
echo "$OUT"
assert_ok "launcher-mode run"
python3 - "$TMP/launch.json" <<'PY' || fail "bad JSON lines (launcher mode)"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 8, rows  # {gfs, posix} x {write, read, append, append stream}
for r in rows:
    assert r["errors"] == 0 and r["chunkservers"] == 2, r
    assert r["ranks"] == (1 if r["op"] == "stream" else 3), r
    assert r["replication"] == (2 if r["api"] == "gfs" else 1), r
PY
assert_no_leftovers "$TMP/data4"
# Each rep waits until the chunkservers have deleted its files' chunks (so
# that no later timed phase pays for them): none is left when the job ends.
left="$(find "$TMP/data4" -name '*.chunk' | wc -l)"
assert_eq 0 "$left" "chunk files of the removed bench files left on disk"

# The bench's exit status comes back through the launcher (mpirun's own is
# always 0 under --enable-recovery): 1 when a backend failed...
run_cmd "$BENCH" --data-dir "$TMP/data5" --clients 2 --dir "$TMP/no-such-dir" \
  -t 64K -b 256K --api posix --workload write --reps 1 --memcpy-mib 16
assert_exit 1 "a baseline directory that does not exist"
assert_contains "$ERR" "open for write"
assert_no_leftovers "$TMP/data5"
# ... and 2 for bad options, found before any job starts.
run_cmd "$BENCH" --data-dir "$TMP/data6" -t 3M -b 4M
assert_exit 2 "-b not a multiple of -t"
assert_contains "$ERR" "multiple of -t"
run_cmd "$BENCH" --data-dir "$TMP/data6" --no-such-option
assert_exit 2 "unknown option"
assert_contains "$ERR" "unknown option '--no-such-option'"
[[ -e "$TMP/data6" ]] && fail "a rejected command line started a job"

# bench/targets.sh: the issue-5 target set, scaled down 64 times; every
# configuration leaves its JSON lines and summary, and bad arguments exit 2.
TARGETS="$HERE/../../bench/targets.sh"
run_cmd "$TARGETS" --bench "$BENCH" --out "$TMP/targets" --reps 1 --scale-down 64 \
  --disk "$TMP/tdisk" --shm "$TMP/tshm"
assert_ok "bench/targets.sh"
for name in write-read-r1 append-8 write-r3 tmpfs-r1; do
  [[ -s "$TMP/targets/$name.json" ]] || fail "targets.sh left no $name.json"
  assert_contains "$OUT" "== $name:"
done
assert_contains "$OUT" "mpiio/3="
[[ -e "$TMP/tdisk" || -e "$TMP/tshm" ]] && fail "targets.sh left its scratch directories"
run_cmd "$TARGETS" --bench "$BENCH" --reps 0
assert_exit 2 "--reps 0"
assert_contains "$ERR" "--reps must be a positive number"

# Plots: bench/plot picks matplotlib or gnuplot itself, and exits 2 when it
# has neither (then only that check is skipped).
run_cmd "$PLOT" --out "$TMP/png" "$TMP/bench.json" "$TMP/fpp.json"
if [[ "$RC" == 2 && "$ERR" == *"neither"* ]]; then
  log "skipping the PNG check: $ERR"
else
  assert_ok "bench/plot"
  # Two configurations, each with one rank count and transfer size: no line
  # has two points, so the charts are the summary's bar groups.
  for f in summary; do
    [[ -s "$TMP/png/$f.png" ]] || fail "bench/plot did not make $f.png: $(ls "$TMP/png")"
    [[ "$(head -c 4 "$TMP/png/$f.png" | tail -c 3)" == PNG ]] || fail "$f.png is not a PNG"
  done
  # Three transfer sizes: a line chart over sizes labelled 1M, 4M, 16M.
  python3 - "$TMP/sizes.json" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for t in (1 << 20, 4 << 20, 16 << 20):
        for api, v in (("gfs", 1000.0), ("mpiio", 900.0)):
            f.write(json.dumps({"api": api, "workload": "write", "op": "", "ranks": 2,
                                "replication": 1, "transfer": t, "block": 1 << 28,
                                "mb_per_s": v, "median": v, "min": v, "max": v}) + "\n")
PY
  run_cmd "$PLOT" --out "$TMP/png2" "$TMP/sizes.json"
  assert_ok "bench/plot over transfer sizes"
  assert_contains "$OUT" "write-vs-transfer.png"
  assert_not_contains "$OUT" "write-vs-ranks.png" "one rank count draws no line over ranks"
fi
pass
