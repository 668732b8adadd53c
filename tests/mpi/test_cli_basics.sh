#!/bin/bash
# The gfs tool as a user meets it: mkdir, put, ls (-R, --json), stat, cat,
# put over an existing file (-f), mv, rm, rm -r, put -r / get -r. Every step is
# its own job (launcher, default 3 chunkservers), so state persists between jobs.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

GLOBALS=(--chunk-size 1M)
MiB=1048576
rand_file "$TMP/small" 1000
rand_file "$TMP/small2" 777
rand_file "$TMP/medium" $((3 * MiB + 7))
: >"$TMP/empty"

run_gfs mkdir -p /a/b/c
assert_ok "mkdir -p"
run_gfs mkdir -p /a/b/c
assert_ok "mkdir -p of an existing directory"
run_gfs mkdir /a/b
assert_fails "mkdir of an existing directory without -p"
run_gfs mkdir /x/y
assert_fails "mkdir without -p under a missing parent"

run_gfs put "$TMP/small" /a/b/f1
assert_ok "put small"
run_gfs put "$TMP/empty" /a/empty
assert_ok "put empty"
run_gfs put "$TMP/medium" /a/b/c/f2
assert_ok "put medium"

# ls
run_gfs ls /a/b
assert_ok "ls"
assert_contains "$OUT" "f1" "ls /a/b"
assert_contains "$OUT" "c" "ls /a/b"
assert_not_contains "$OUT" "f2" "ls /a/b is not recursive"
run_gfs ls -R /
assert_ok "ls -R"
assert_contains "$OUT" "f1" "ls -R /"
assert_contains "$OUT" "f2" "ls -R /"
assert_contains "$OUT" "empty" "ls -R /"

run_gfs ls --json /a/b
assert_ok "ls --json"
python3 - "$OUT" <<'PY' || fail "ls --json /a/b content"
import json, sys
entries = json.loads(sys.argv[1])
assert isinstance(entries, list), f"not a JSON array: {entries!r}"
by = {e["path"].rstrip("/").split("/")[-1]: e for e in entries}
assert set(by) == {"f1", "c"}, f"entries {sorted(by)} != ['c', 'f1']"
f1, c = by["f1"], by["c"]
assert f1["type"] == "file" and int(f1["size"]) == 1000, f1
assert int(f1["replication"]) == 3 and int(f1["chunk_size"]) == 1048576, f1
assert c["type"] == "dir", c
print("ls --json ok:", sorted(by))
PY

run_gfs ls -R --json /a
assert_ok "ls -R --json"
python3 - "$OUT" $((3 * 1048576 + 7)) <<'PY' || fail "ls -R --json /a content"
import json, sys
entries = json.loads(sys.argv[1])
paths = {e["path"].rstrip("/"): e for e in entries}
for p in ["/a/b", "/a/b/f1", "/a/b/c", "/a/b/c/f2", "/a/empty"]:
    assert p in paths, f"{p} missing from ls -R --json /a: {sorted(paths)}"
f2 = paths["/a/b/c/f2"]
assert int(f2["size"]) == int(sys.argv[2]), f2
chunks = f2["chunks"]
n = len(chunks) if isinstance(chunks, list) else int(chunks)
assert n == 4, f"f2 has {n} chunks, expected 4: {f2}"
assert int(paths["/a/empty"]["size"]) == 0, paths["/a/empty"]
print("ls -R --json ok")
PY

# stat
run_gfs stat /a/b/f1
assert_ok "stat"
assert_contains "$OUT" "size: 1000" "stat /a/b/f1"
run_gfs stat --json /a/b/c/f2
assert_ok "stat --json"
assert_eq $((3 * MiB + 7)) "$(json_get size <<<"$OUT")" "stat size of f2"
assert_eq 4 "$(json_count chunks <<<"$OUT")" "stat chunks of f2"
assert_eq /a/b/c/f2 "$(json_get path <<<"$OUT")" "stat path"
run_gfs stat --json /a/b
assert_ok "stat of a directory"
assert_eq dir "$(json_get type <<<"$OUT")" "stat type of /a/b"
run_gfs stat /a/empty
assert_ok "stat empty"
assert_contains "$OUT" "size: 0" "stat /a/empty"

# cat
run_gfs cat /a/b/f1
assert_ok "cat"
assert_same_file "$TMP/small" "$OUT_FILE" "cat /a/b/f1"
run_gfs cat /a/b/c/f2
assert_ok "cat medium"
assert_same_file "$TMP/medium" "$OUT_FILE" "cat /a/b/c/f2"
run_gfs cat /a/empty
assert_ok "cat empty"
assert_eq 0 "$(stat -c %s "$OUT_FILE")" "cat of an empty file"

# put over an existing file: refused without -f, replaces with -f
run_gfs put "$TMP/small2" /a/b/f1
assert_fails "put to an existing path without -f"
assert_one_error_line "/a/b/f1"
run_gfs get /a/b/f1 "$TMP/f1.out"
assert_ok "get after refused put"
assert_same_file "$TMP/small" "$TMP/f1.out" "refused put must not change the file"
run_gfs put -f "$TMP/small2" /a/b/f1
assert_ok "put -f"
run_gfs get /a/b/f1 "$TMP/f1.out2"
assert_ok "get after put -f"
assert_same_file "$TMP/small2" "$TMP/f1.out2" "put -f replaces the file"

# mv of a file
run_gfs mv /a/b/f1 /a/g1
assert_ok "mv file"
run_gfs stat /a/b/f1
assert_exit 1 "stat of the old name after mv"
assert_one_error_line "/a/b/f1" "no such file"
run_gfs cat /a/g1
assert_ok "cat new name"
assert_same_file "$TMP/small2" "$OUT_FILE" "content after mv"

# mv of a directory moves its subtree
run_gfs mv /a/b/c /d
assert_ok "mv directory"
run_gfs get /d/f2 "$TMP/f2.out"
assert_ok "get under the moved directory"
assert_same_file "$TMP/medium" "$TMP/f2.out" "content after directory mv"
run_gfs ls -R /a
assert_ok "ls -R /a after mv"
assert_not_contains "$OUT" "f2" "moved subtree still listed under /a"

# rm
run_gfs rm /a/g1
assert_ok "rm file"
run_gfs stat /a/g1
assert_fails "stat after rm"
assert_contains "$ERR" "no such file" "stat after rm"
run_gfs rm /a/nothing
assert_fails "rm of a missing path"
assert_one_error_line "gfs: rm: /a/nothing:" "no such file"
run_gfs rm /a
assert_fails "rm of a non-empty directory without -r"
run_gfs stat /a/empty
assert_ok "rm without -r must not remove the directory's files"
run_gfs rm -r /a
assert_ok "rm -r"
run_gfs stat /a
assert_fails "stat after rm -r"
run_gfs stat /a/empty
assert_fails "stat of a file under a removed directory"
run_gfs ls --json /
assert_ok "ls --json /"
python3 - "$OUT" <<'PY' || fail "ls / after rm -r /a"
import json, sys
paths = sorted(e["path"].rstrip("/") for e in json.loads(sys.argv[1]))
assert paths == ["/d"], f"ls --json / lists {paths}, expected ['/d']"
PY
# the namespace is free again: same name can be reused
run_gfs put "$TMP/small" /a
assert_ok "put to a removed name"

# put -r / get -r of a local tree
mkdir -p "$TMP/tree/sub/deeper"
rand_file "$TMP/tree/x" 5000
rand_file "$TMP/tree/sub/y" $((MiB + 3))
rand_file "$TMP/tree/sub/deeper/z" 1
: >"$TMP/tree/sub/e"
run_gfs put -r "$TMP/tree" /tree
assert_ok "put -r"
run_gfs get -r /tree "$TMP/tree.out"
assert_ok "get -r"
diff -r "$TMP/tree" "$TMP/tree.out" >&2 || fail "get -r tree differs from the put -r tree"

pass
