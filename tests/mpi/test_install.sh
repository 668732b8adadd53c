#!/bin/bash
# `cmake --install` into a temp prefix, then a tiny external project
# (tests/install: find_package(gfs); gfs::gfs_client for embedding,
# gfs::gfs_io for the client library alone, gfs::gfs_h5; every installed
# header compiled on its own) configured and built against that prefix only,
# run under mpirun: it writes a file and reads it back. The installed gfs tool
# then sees the file the program wrote.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

SRC="$(cd "$HERE/../.." && pwd)"
BUILD="${GFS_BUILD_DIR:-$(dirname "$GFS")}"
PREFIX="$TMP/prefix"

run_cmd cmake --install "$BUILD" --prefix "$PREFIX"
assert_ok "cmake --install"
for f in bin/gfs lib/libgfs_io.a lib/libgfs_embed.a lib/libgfs_common.a lib/libgfs_transport.a \
  lib/libgfs_protocol.a lib/libgfs_master.a lib/libgfs_chunk.a lib/libgfs_h5.a \
  include/gfs/gfs.h include/gfs/client.h include/gfs/jobs/gfs.h include/gfs/io/client.h \
  include/gfs/common/status.h include/gfs/mpi/protocol/config.h include/gfs/io/h5/packet_table.h \
  lib/cmake/gfs/gfsConfig.cmake lib/cmake/gfs/gfsConfigVersion.cmake \
  lib/cmake/gfs/gfsTargets.cmake; do
  [[ -e "$PREFIX/$f" ]] || fail "not installed: $f"
done
# Headers live under one prefix (<gfs/...>): nothing else in include/, no
# include path of the package ending in include/gfs, no quoted include of
# the tree's own paths left in an installed header.
[[ "$(ls "$PREFIX/include")" == gfs ]] || fail "include/ holds more than gfs/: $(ls "$PREFIX/include")"
if grep -Eq 'include/gfs[";]' "$PREFIX/lib/cmake/gfs/gfsTargets.cmake"; then
  fail "an exported target puts include/gfs on the include path"
fi
if grep -rn '#include "' "$PREFIX/include/gfs"; then
  fail "an installed header includes a path outside <gfs/...>"
fi
[[ -x "$PREFIX/bin/gfs" ]] || fail "bin/gfs is not executable"
if [[ -x "$BUILD/gfs-bench" ]]; then
  [[ -x "$PREFIX/bin/gfs-bench" ]] || fail "gfs-bench was built but not installed"
fi
# No path into the source or build tree may leak into the package.
if grep -rl -e "$SRC/" -e "$BUILD/" "$PREFIX/lib/cmake/gfs" >/dev/null; then
  fail "the package config names the source or build tree: $(grep -rh -e "$SRC/" -e "$BUILD/" "$PREFIX/lib/cmake/gfs" | head -3)"
fi

APP="$TMP/app-build"
run_cmd cmake -S "$SRC/tests/install" -B "$APP" -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_BUILD_TYPE=Release
assert_ok "configure the external project against the installed package"
run_cmd cmake --build "$APP" -j2
assert_ok "build the external project"

run_cmd mpirun --allow-run-as-root --oversubscribe -q -np 1 "$APP/gfs_install_client"
assert_ok "gfs_install_client (the client library alone)"
assert_contains "$OUT" "OK client-only" "gfs_install_client"

for app in gfs_install_app gfs_install_h5; do
  rm -f "$TMP/result"
  run_cmd mpirun --allow-run-as-root --oversubscribe --enable-recovery -q -np 5 \
    "$APP/$app" "$DATA" "$TMP/result"
  assert_ok "$app under mpirun"
  [[ -s "$TMP/result" ]] || fail "$app wrote no result file"
  assert_eq "OK 3145733" "$(cat "$TMP/result")" "$app result"
  assert_contains "$OUT" "OK 3145733" "$app prints OK"
  assert_no_leftovers
  rm -rf "$DATA"
done

# The installed tool reads what an installed-library program wrote.
run_cmd mpirun --allow-run-as-root --oversubscribe --enable-recovery -q -np 5 \
  "$APP/gfs_install_app" "$DATA" "$TMP/result"
assert_ok
run_cmd "$PREFIX/bin/gfs" --data-dir "$DATA" get /install/hello.bin "$TMP/hello.bin"
assert_ok "installed gfs get"
assert_eq 3145733 "$(stat -c %s "$TMP/hello.bin")" "size through the installed tool"
assert_no_leftovers

pass
