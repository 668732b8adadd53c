#!/bin/bash
# Packet tables: tests/programs/h5_packet_table (under mpirun: 1 master + 3
# chunkservers + 4 clients) has 4 client ranks append packets of a compound
# type {rank, seq, value, tag} to one table at once, reads them back (each
# (rank, seq) exactly once, values right), exports the table to a real .h5
# file and reads it with the HDF5 C API. Here: h5dump shows the exported
# dataset with its field names and values; `gfs h5export` (when the tool has
# the command) exports the same table identically, and fails cleanly on a
# file that is not a packet table.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

PROG="${GFS_TEST_PROGRAMS:?GFS_TEST_PROGRAMS is not set}/h5_packet_table"
[[ -x "$PROG" ]] || fail "$PROG is not built"
command -v h5dump >/dev/null || fail "h5dump not found (hdf5-tools)"

run_cmd env GFS_TEST_SCALE="$SCALE" mpirun --allow-run-as-root --oversubscribe --enable-recovery \
  -q -np 8 "$PROG" "$DATA" "$TMP/result" "$TMP/table.h5" /h5/table.pt
assert_ok "mpirun h5_packet_table"
[[ -s "$TMP/result" ]] || fail "h5_packet_table wrote no result file"
RESULT="$(cat "$TMP/result")"
log "result: $RESULT"
[[ "$RESULT" == OK* ]] || fail "h5_packet_table: $RESULT"
assert_no_leftovers
PACKETS="$(sed -n 's/.*packets=\([0-9]*\).*/\1/p' <<<"$RESULT")"

run_cmd h5dump -H "$TMP/table.h5"
assert_ok "h5dump -H of the export"
for want in 'DATASET "packets"' 'H5T_COMPOUND' 'H5T_STD_I32LE "rank"' 'H5T_STD_I64LE "seq"' \
  'H5T_IEEE_F64LE "value"' '"tag"' "( $PACKETS ) / ( H5S_UNLIMITED )" 'ATTRIBUTE "gfs_source"'; do
  assert_contains "$OUT" "$want" "h5dump -H"
done
run_cmd h5dump -d /packets -c 3 "$TMP/table.h5"
assert_ok "h5dump -d /packets"
assert_contains "$OUT" '"r' "packet tags"
run_cmd h5dump -a /packets/gfs_source "$TMP/table.h5"
assert_ok "h5dump -a gfs_source"
assert_contains "$OUT" '"/h5/table.pt"' "gfs_source attribute"

# The command-line export (a second job on the same data).
GLOBALS=(--chunkservers 3)
run_gfs h5export /h5/table.pt "$TMP/cli.h5" --dataset run/samples
if ((RC != 0)) && [[ "$ERR" == *"unknown command"* ]]; then
  log "SKIP gfs h5export: the tool does not have the command yet"
else
  assert_ok "gfs h5export"
  run_cmd h5dump -d /packets "$TMP/table.h5"
  assert_ok
  A="$(sed 1d "$OUT_FILE" | sed 's#DATASET "[^"]*"##')"
  run_cmd h5dump -d /run/samples "$TMP/cli.h5"
  assert_ok "h5dump of the CLI export"
  B="$(sed 1d "$OUT_FILE" | sed 's#DATASET "[^"]*"##')"
  [[ "$A" == "$B" ]] || fail "gfs h5export and the library export differ"
  # Not a packet table: one clear error line, no output file left.
  printf 'plain bytes, not records\n' >"$TMP/plain.txt"
  run_gfs put "$TMP/plain.txt" /h5/plain.txt
  assert_ok "put"
  run_gfs h5export /h5/plain.txt "$TMP/bad.h5"
  assert_fails "h5export of a plain file"
  assert_contains "$ERR" "not a packet table" "h5export error"
  [[ ! -e "$TMP/bad.h5" ]] || fail "a failed h5export left $TMP/bad.h5 behind"
fi

pass
