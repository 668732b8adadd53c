#!/bin/bash
# State persists between jobs: a file put in one job reads back identically in
# later jobs started with other defaults; its chunk size and replication are
# the ones recorded at creation; chunkserver identities are stable; new files
# take the new defaults.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

MB="$(scaled_mb 40)"
SIZE=$((MB * 1048576 + 4321))
rand_file "$TMP/in.bin" "$SIZE"
rand_file "$TMP/in2.bin" $((5 * 1048576 + 1))

identities() {
  local d
  for d in $(chunk_dirs); do
    [[ -s "$d/IDENTITY" ]] || fail "$d/IDENTITY missing or empty"
    printf '%s %s\n' "$(basename "$d")" "$(sha256sum <"$d/IDENTITY" | cut -d' ' -f1)"
  done
}

GLOBALS=(--chunkservers 4 --replication 3 --chunk-size 8M)
run_gfs mkdir -p /keep
assert_ok "mkdir"
run_gfs put "$TMP/in.bin" /keep/a.bin
assert_ok "put (job 1)"
[[ -d "$DATA/master" ]] || fail "$DATA/master missing after a job"
ID1="$(identities)"
assert_eq 4 "$(chunk_dirs | wc -l)" "chunkserver directories after job 1"
log "identities after job 1:"; printf '%s\n' "$ID1"

# Job 2: other defaults.
GLOBALS=(--chunkservers 4 --replication 2 --chunk-size 4M)
run_gfs get /keep/a.bin "$TMP/out.bin"
assert_ok "get (job 2, other defaults)"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "read back in a later job"
run_gfs stat --json /keep/a.bin
assert_ok "stat (job 3)"
assert_eq "$SIZE" "$(json_get size <<<"$OUT")" "size"
assert_eq 8388608 "$(json_get chunk_size <<<"$OUT")" "chunk size recorded at creation"
assert_eq 3 "$(json_get replication <<<"$OUT")" "replication recorded at creation"
assert_eq $(((SIZE + 8388607) / 8388608)) "$(json_count chunks <<<"$OUT")" "chunks"
run_gfs stat /keep/a.bin
assert_ok "plain stat"
assert_contains "$OUT" "size: $SIZE" "plain stat size"

# New files take the new defaults.
run_gfs put "$TMP/in2.bin" /keep/b.bin
assert_ok "put with the new defaults"
run_gfs stat --json /keep/b.bin
assert_ok "stat b"
assert_eq 4194304 "$(json_get chunk_size <<<"$OUT")" "new file chunk size"
assert_eq 2 "$(json_get replication <<<"$OUT")" "new file replication"

ID2="$(identities)"
assert_eq "$ID1" "$ID2" "chunkserver IDENTITY files changed between jobs"

# Both files again in one more job, and the on-disk replicas of a.bin are
# still 3 identical copies per chunk (b.bin's chunks have 2).
GLOBALS=()
run_gfs --chunkservers 4 get /keep/a.bin "$TMP/out3.bin"
assert_ok "get a (job with launcher defaults)"
assert_same_file "$TMP/in.bin" "$TMP/out3.bin" "a.bin in a third set of defaults"
run_gfs --chunkservers 4 get /keep/b.bin "$TMP/out4.bin"
assert_ok "get b"
assert_same_file "$TMP/in2.bin" "$TMP/out4.bin" "b.bin"
assert_eq "$ID1" "$(identities)" "chunkserver IDENTITY files after more jobs"

pass
