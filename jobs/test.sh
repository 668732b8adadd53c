#!/bin/bash
# Whole test suite: unit tests (GoogleTest) and MPI tests (real ranks through
# build/gfs) via CTest, in the Release build and, unless GFS_SKIP_ASAN=1, the
# unit tests plus a few MPI tests in an ASan+UBSan build (build-asan).
#
#   GFS_TEST_SCALE  scale for the MPI tests' data sizes (default 0.25 when CI is
#                   set, else 1 = the full sizes from the issue)
#   GFS_SKIP_ASAN=1 skip the sanitizer build
#   GFS_BUILD_DIR / GFS_ASAN_BUILD_DIR  build directories (default build, build-asan)
set -euo pipefail

T_START="$(date +%s)"
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/setup.sh"
T_BUILD="$(date +%s)"

if [[ -z "${GFS_TEST_SCALE:-}" ]]; then
  if [[ -n "${CI:-}" ]]; then GFS_TEST_SCALE=0.25; else GFS_TEST_SCALE=1; fi
fi
export GFS_TEST_SCALE

declare -a PHASES=()
phase() { PHASES+=("$(printf '%-40s %5ds' "$1" "$2")"); }
phase "set-up + Release build" $((T_BUILD - T_START))

report() {
  echo
  echo "== timing"
  printf '  %s\n' "${PHASES[@]}"
}
trap report EXIT

ASAN_BUILD="${GFS_ASAN_BUILD_DIR:-$ROOT/build-asan}"
if [[ "${GFS_SKIP_ASAN:-0}" != 1 ]]; then
  t0="$(date +%s)"
  gfs_build "$ASAN_BUILD" -DGFS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  phase "ASan+UBSan build" $(($(date +%s) - t0))
fi

status=0
echo "== clang-format check"
t0="$(date +%s)"
mapfile -t SOURCES < <(cd "$ROOT" && find common mpi master chunk io jobs bench tests -name '*.cc' -o -name '*.h' 2>/dev/null | sort)
if (cd "$ROOT" && clang-format --dry-run --Werror "${SOURCES[@]}"); then
  echo "formatted: ${#SOURCES[@]} files"
else
  echo "clang-format: the files above are not formatted (run clang-format -i on them)" >&2
  status=1
fi
phase "clang-format check" $(($(date +%s) - t0))
echo "== ctest (Release, all tests, GFS_TEST_SCALE=$GFS_TEST_SCALE)"
t0="$(date +%s)"
# Unit tests two at a time (in-process, no MPI); everything else one at a
# time (the MPI tests also say RUN_SERIAL).
if ! ctest --test-dir "$BUILD" --output-on-failure --no-tests=error -L unit -j2; then
  status=1
fi
if ! ctest --test-dir "$BUILD" --output-on-failure --no-tests=error -LE unit -j1; then
  status=1
fi
phase "ctest Release (all)" $(($(date +%s) - t0))

if [[ "${GFS_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== ctest (ASan+UBSan, unit tests)"
  t0="$(date +%s)"
  if ! ctest --test-dir "$ASAN_BUILD" --output-on-failure --no-tests=error -L unit -j2; then
    status=1
  fi
  phase "ctest ASan+UBSan (unit)" $(($(date +%s) - t0))

  echo "== ctest (ASan+UBSan, MPI smoke tests)"
  t0="$(date +%s)"
  if ! ctest --test-dir "$ASAN_BUILD" --output-on-failure --no-tests=error -j1 -R 'mpi\.test_(cli_basics|errors)$'; then
    status=1
  fi
  phase "ctest ASan+UBSan (mpi smoke)" $(($(date +%s) - t0))
fi

phase "total" $(($(date +%s) - T_START))
if ((status != 0)); then
  echo "test.sh: FAILED" >&2
  exit 1
fi
echo "test.sh: all tests passed"
