#!/bin/bash
# The HDF5 driver: tests/programs/h5_vfd (under mpirun: 1 master + 3
# chunkservers + 4 clients) creates a multi-dataset .h5 file (64 MiB x scale)
# in gfs through the driver, reads it back through the driver (client 0, then
# another client), and checks that its peak RSS grew by far less than the file
# size. Then `gfs get` copies the file out, and h5dump reads it: datasets,
# the compound type's field names, values.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

PROG="${GFS_TEST_PROGRAMS:?GFS_TEST_PROGRAMS is not set}/h5_vfd"
[[ -x "$PROG" ]] || fail "$PROG is not built"
command -v h5dump >/dev/null || fail "h5dump not found (hdf5-tools)"

run_cmd env GFS_TEST_SCALE="$SCALE" mpirun --allow-run-as-root --oversubscribe --enable-recovery \
  -q -np 8 "$PROG" "$DATA" "$TMP/result" /h5/vfd.h5
assert_ok "mpirun h5_vfd"
[[ -s "$TMP/result" ]] || fail "h5_vfd wrote no result file"
RESULT="$(cat "$TMP/result")"
log "result: $RESULT"
[[ "$RESULT" == OK* ]] || fail "h5_vfd: $RESULT"
assert_no_leftovers

# The file is an ordinary HDF5 file once copied out.
GLOBALS=(--chunkservers 3)
run_gfs get /h5/vfd.h5 "$TMP/vfd.h5"
assert_ok "gfs get of the .h5 file"
SIZE="$(sed -n 's/.*file_bytes=\([0-9]*\).*/\1/p' <<<"$RESULT")"
assert_eq "$SIZE" "$(stat -c %s "$TMP/vfd.h5")" "size of the copied-out file"

run_cmd h5dump -H "$TMP/vfd.h5"
assert_ok "h5dump -H"
for want in 'DATASET "ints"' 'DATASET "grid"' 'GROUP "group"' 'DATASET "records"' \
  'H5T_STD_I64LE' 'H5T_IEEE_F64LE' '"a"' '"b"' '"tag"' 'ATTRIBUTE "rows"'; do
  assert_contains "$OUT" "$want" "h5dump -H"
done

# A few values (the program's formulas: ints[i] = 7i+1, grid[r][c] = 1024r+c+0.5,
# records[i] = {i-500000, i/4, "t%06u"}).
run_cmd h5dump -d /ints -s 10 -c 2 "$TMP/vfd.h5"
assert_ok "h5dump -d /ints"
assert_contains "$OUT" "71, 78" "ints[10..11]"
run_cmd h5dump -d /grid -s 3,5 -c 1,1 "$TMP/vfd.h5"
assert_ok "h5dump -d /grid"
assert_contains "$OUT" "3077.5" "grid[3][5]"
run_cmd h5dump -d /group/records -s 4 -c 1 "$TMP/vfd.h5"
assert_ok "h5dump -d /group/records"
assert_contains "$OUT" "-499996" "records[4].a"
assert_contains "$OUT" '"t000004"' "records[4].tag"

pass
