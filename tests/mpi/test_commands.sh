#!/bin/bash
# The HDFS-shaped commands against a store with files, directories, a record
# log and an empty file: du, df, count, cp, head, tail, touchz, test, rm -f,
# ls -l/-h; report totals; and every --json output parsed by Python's json
# with awkward names (quotes, backslashes, control characters, non-ASCII),
# its field names as doc/options.md lists them.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

GLOBALS=(--chunk-size 1M --chunkservers 2 --replication 2)
MiB=1048576
rand_file "$TMP/big" $((2 * MiB + 5))
printf 'one\ntwo\nthree\nfour\n' >"$TMP/lines"
: >"$TMP/empty"
WEIRD=$'/d/we"ird\\name\ttab\x01ü'

run_gfs mkdir -p /d/sub
assert_ok
run_gfs put "$TMP/big" /d/big
assert_ok
run_gfs put "$TMP/lines" /d/sub/lines
assert_ok
run_gfs put "$TMP/lines" "$WEIRD"
assert_ok "put to a name with a quote, a backslash, a tab, a control character"
run_gfs touchz /d/empty /d/empty2
assert_ok "touchz"
assert_eq "" "$ERR" "a command that succeeds prints nothing on stderr"

# The storage ranks' log: -v adds info and debug lines with the time and the
# level; -q keeps errors only.
run_gfs -v ls /d
assert_ok "ls -v"
grep -Eq '^gfs: [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} I master rank 0: serving ' "$ERR_FILE" ||
  fail "no timestamped info line from the master with -v: $ERR"
grep -Eq ' I chunkserver rank [0-9]+: serving .*chunkserver-' "$ERR_FILE" || fail "-v: $ERR"
run_gfs -q ls /d
assert_ok "ls -q"
assert_eq "" "$ERR" "-q: nothing on stderr"
run_gfs touchz /d/empty
assert_ok "touchz of an existing empty file"
run_gfs touchz /d/big
assert_exit 1 "touchz of a file with data"
assert_one_error_line "/d/big" "not a zero-length file"
echo "record one" >"$TMP/r1"
run_gfs append /d/log "$TMP/r1"
assert_ok "append"
run_gfs append /d/log "$TMP/lines"
assert_ok "append"

# ls -l: HDFS's column order; -h: human sizes
run_gfs ls -l /d
assert_ok "ls -l"
line="$(grep ' /d/big$' <<<"$OUT")"
read -r perm repl owner group size day time path <<<"$line"
assert_eq "-rw-r--r-- 2 - - $((2 * MiB + 5)) /d/big" "$perm $repl $owner $group $size $path" "ls -l columns"
[[ "$day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ && "$time" =~ ^[0-9]{2}:[0-9]{2}$ ]] || fail "ls -l date: $line"
grep -Eq '^drwxr-xr-x +- +- +- .* /d/sub$' <<<"$OUT" || fail "ls -l directory line: $OUT"
run_gfs ls -l -h /d/big
assert_ok
assert_contains "$OUT" " 2.0M " "ls -l -h size"
run_gfs ls -h /d
assert_ok "ls -h is human-readable sizes, not help"
assert_not_contains "$OUT" "usage" "ls -h"

# du, count, df
run_gfs du /d
assert_ok "du"
assert_contains "$OUT" "$((2 * MiB + 5)) " "du size of big"
assert_contains "$OUT" "$((2 * (2 * MiB + 5))) " "du with both replicas"
run_gfs du -s -h /d
assert_ok "du -s -h"
assert_eq 1 "$(grep -c . <<<"$OUT")" "du -s: one line"
run_gfs stat --json /d/log
log_size="$(json_get size <<<"$OUT")"
run_gfs count /d
assert_ok "count"
read -r dirs files bytes path <<<"$OUT"
total=$((2 * MiB + 5 + 19 + 19))
assert_eq "2 6 /d" "$dirs $files $path" "count: directories (with /d itself), files"
assert_eq $((total + log_size)) "$bytes" "count: bytes"
run_gfs df -h
assert_ok "df"
assert_contains "$OUT" "Filesystem" "df header"

# head, tail (of a record log: up to its committed length)
run_gfs head -c 5 /d/sub/lines
assert_ok
assert_eq "one" "$(head -n 1 "$OUT_FILE")" "head -c 5"
assert_eq 5 "$(stat -c %s "$OUT_FILE")" "head -c 5 bytes"
run_gfs tail -n 2 /d/sub/lines
assert_ok
assert_eq $'three\nfour' "$OUT" "tail -n 2"
run_gfs tail -c 3 /d/big
assert_ok
cmp -s <(tail -c 3 "$TMP/big") "$OUT_FILE" || fail "tail -c 3 /d/big"
run_gfs tail -c 100 /d/log
assert_ok "tail of a record log"
assert_contains "$OUT" "four" "the last record's payload ends the log"
run_gfs tail -f /d/log
assert_exit 2 "tail -f needs a running service"
assert_one_error_line "running service"
run_gfs head /d/empty
assert_ok "head of an empty file"
assert_eq 0 "$(stat -c %s "$OUT_FILE")"

# test
for t in "-e /d/big 0" "-f /d/big 0" "-d /d/big 1" "-d /d 0" "-e /nope 1" "-z /d/empty 0" \
  "-z /d/big 1" "-e /d/big/x 1"; do
  read -r flag path want <<<"$t"
  run_gfs test "$flag" "$path"
  assert_exit "$want" "test $flag $path"
  assert_eq "" "$ERR" "test prints nothing"
done
run_gfs test /d
assert_exit 2 "test without a flag"

# cp (within the store), rm -f
run_gfs cp /d/big /d/big2
assert_ok "cp"
run_gfs get /d/big2 "$TMP/big2"
assert_same_file "$TMP/big" "$TMP/big2" "cp copies the bytes"
run_gfs cp /d/sub /e
assert_ok "cp of a directory"
run_gfs cat /e/lines
assert_same_file "$TMP/lines" "$OUT_FILE" "cp -r content"
run_gfs cp /d/sub/lines /d/big2
assert_exit 1 "cp onto an existing file without -f"
run_gfs cp -f /d/sub/lines /d/big2
assert_ok "cp -f"
run_gfs cat /d/big2
assert_same_file "$TMP/lines" "$OUT_FILE" "cp -f replaced the file"
run_gfs rm -f /d/nope /d/big2
assert_ok "rm -f of a missing path"
run_gfs test -e /d/big2
assert_exit 1 "rm -f removed the file that exists"
run_gfs rm /d/nope
assert_exit 1 "rm without -f of a missing path"

# records: a file without records is an error, not silence
run_gfs records /d/big
assert_exit 1 "records of a file with no records"
assert_one_error_line "not a record log"
run_gfs records /d/log
assert_ok
assert_eq 2 "$(grep -c . <<<"$OUT")" "two records"
run_gfs records --json /d/log
assert_ok
printf '%s' "$OUT" >"$TMP/records.json"

# put -f applies this job's settings to the new file (never keeps the old ones).
GLOBALS=(--chunkservers 2 --replication 1 --chunk-size 2M)
run_gfs put -f "$TMP/lines" /d/sub/lines
assert_ok "put -f with other settings"
GLOBALS=(--chunk-size 1M --chunkservers 2 --replication 2)
run_gfs stat --json /d/sub/lines
assert_eq 1 "$(json_get replication <<<"$OUT")" "put -f applied --replication"
assert_eq $((2 * MiB)) "$(json_get chunk_size <<<"$OUT")" "put -f applied --chunk-size"

# --progress: on a terminal one line redrawn in place (carriage returns), with
# percent and rate; to a file, plain lines.
run_cmd script -qec "$(printf '%q ' "$GFS" --data-dir "$DATA" --progress put -f "$TMP/big" /d/big)" /dev/null
assert_ok "put --progress on a terminal"
assert_contains "$OUT" $'\r' "progress redraws its line on a terminal"
assert_contains "$OUT" "(100%)" "progress shows the percent"
assert_contains "$OUT" "/s" "progress shows the rate"
run_gfs put -f "$TMP/big" /d/big --progress  # a global option after the arguments
assert_ok "put --progress to a file"
assert_not_contains "$ERR" $'\r' "no carriage returns when stderr is not a terminal"
assert_contains "$ERR" "(100%)" "plain progress lines"

# Every --json output parses, with the awkward name intact.
PCFILE=$'/d/pc"q\\x\ty'
run_gfs --clients 2 producer-consumer --file "$PCFILE" --producers 1 --records 20 --max-size 256 --json
assert_ok "producer-consumer with an awkward file name"
printf '%s' "$OUT" >"$TMP/pc.json"
mkdir -p "$TMP/base\"q"
run_cmd "$(dirname "$GFS")/gfs-bench" --data-dir "$TMP/bench-data" --api posix,gfs --workload write \
  -t 64K -b 64K --reps 1 --memcpy-mib 1 --dir "$TMP/base\"q" --json "$TMP/bench.json"
assert_ok "gfs-bench with a quote in --dir"
run_gfs ls -R --json /
assert_ok
printf '%s' "$OUT" >"$TMP/ls.json"
run_gfs stat --json "$WEIRD"
assert_ok
printf '%s' "$OUT" >"$TMP/stat.json"
run_gfs du --json /d
assert_ok
printf '%s' "$OUT" >"$TMP/du.json"
run_gfs count --json /d /e
assert_ok
printf '%s' "$OUT" >"$TMP/count.json"
run_gfs df --json
assert_ok
printf '%s' "$OUT" >"$TMP/df.json"
run_gfs report --json
assert_ok
printf '%s' "$OUT" >"$TMP/report.json"
run_gfs fsck --json /
assert_ok
printf '%s' "$OUT" >"$TMP/fsck.json"
python3 - "$TMP" "$WEIRD" "$PCFILE" <<'PY' || fail "JSON outputs"
import json, math, os, sys
d, weird, pcfile = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    with open(os.path.join(d, name + ".json"), encoding="utf-8") as f:
        return json.load(f)
ls = load("ls")
paths = {e["path"]: e for e in ls}
assert weird in paths, sorted(paths)
for e in ls:
    assert set(e) == {"path", "type", "size", "replication", "chunk_size", "chunks", "mtime_ms"}, e
st = load("stat")
assert st["path"] == weird and st["size"] == 19, st
du = {e["path"]: e for e in load("du")}
assert set(next(iter(du.values()))) == {"path", "size", "space_consumed"}, du
assert du["/d/big"]["space_consumed"] == 2 * du["/d/big"]["size"], du
cnt = load("count")
assert [c["path"] for c in cnt] == ["/d", "/e"], cnt
assert set(cnt[0]) == {"path", "directories", "files", "size"}, cnt
df = load("df")
assert set(df) == {"filesystem", "capacity", "used", "free", "use_percent", "chunkservers", "alive",
                   "trash_files", "trash_size", "trash_space"}, df
assert df["trash_files"] == 1, df  # /d/big2, removed above
assert df["used"] <= df["capacity"] and df["free"] <= df["capacity"], df
rep = load("report")
assert set(rep) == {"chunkservers", "total", "chunks", "under_replicated", "missing"}, rep
for s in rep["chunkservers"]:
    assert set(s) == {"id", "dir", "host", "rack", "rank", "state", "capacity", "used", "free", "chunks"}, s
    assert s["rack"] == s["host"], s  # no --topology: every host a rack of its own
assert rep["total"]["used"] == sum(s["used"] for s in rep["chunkservers"]), rep
fs = load("fsck")
assert fs["status"] == "healthy", fs
files = {f["path"]: f for f in fs["files"]}
assert weird in files, sorted(files)
for ch in files["/d/big"]["chunk_list"]:
    assert len(ch["replicas"]) == 2, ch
    for r in ch["replicas"]:
        assert set(r) == {"id", "dir", "host", "rack", "rank"} and r["dir"].startswith("chunkserver-"), r
recs = load("records")
assert len(recs) == 2 and all(set(r) == {"producer", "sequence", "length"} for r in recs), recs
assert sorted(r["length"] for r in recs) == [11, 19], recs
pc = load("pc")
assert pc["file"] == pcfile and pc["ok"] is True and pc["records"] == 20, pc
assert set(pc) == {"file", "producers", "consumers", "records", "expected", "lost_producers",
                   "lost_acknowledged", "bytes", "duplicates", "padding_bytes", "skipped_bytes",
                   "missing", "corrupt", "seconds", "mb_per_s", "ok"}, pc
assert pc["lost_producers"] == 0 and pc["lost_acknowledged"] == 0 and pc["expected"] == 20, pc
with open(os.path.join(d, "bench.json")) as f:
    bench = [json.loads(l) for l in f if l.strip()]
assert bench and all(b["dir"] == os.path.join(d, 'base"q') for b in bench), bench
def finite(x):
    if isinstance(x, float):
        assert math.isfinite(x), x
    elif isinstance(x, dict):
        for v in x.values(): finite(v)
    elif isinstance(x, list):
        for v in x: finite(v)
for b in bench: finite(b)
print("JSON ok")
PY
pass
