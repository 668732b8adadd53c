#!/bin/bash
# The README's quick start runs as written on a fresh data directory (an
# empty working directory with the build in ./build; its cmake line is the
# build CTest already did), and its C++ example compiles.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="$(cd "$(dirname "$GFS")" && pwd)"
# The first ```sh block after "## Quick start", and the ```cpp block.
python3 - "$ROOT/README.md" "$TMP/quickstart.sh" "$TMP/example.cc" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
quick = text[text.index("## Quick start"):]
sh = re.search(r"```sh\n(.*?)```", quick, re.S).group(1)
cpp = re.search(r"```cpp\n(.*?)```", text, re.S).group(1)
lines = [l for l in sh.splitlines() if not l.startswith("cmake ")]
open(sys.argv[2], "w").write("set -euxo pipefail\n" + "\n".join(lines) + "\n")
open(sys.argv[3], "w").write(cpp)
PY
mkdir -p "$TMP/work"
ln -s "$BUILD" "$TMP/work/build"
cd "$TMP/work"
DATA="$TMP/work/gfs-data"
run_cmd bash "$TMP/quickstart.sh"
assert_ok "the README's quick start"
assert_contains "$OUT" "every record arrived exactly once" "producer-consumer"
grep -qx ' *4000' "$OUT_FILE" || fail "records | wc -l did not print 4000"
assert_contains "$OUT" "status: healthy" "fsck"
assert_contains "$OUT" "/runs/numbers.txt" "ls -l"
cd /

# The C++ example compiles against the headers as they are installed (staged
# in the build's include/gfs).
run_cmd mpicxx -std=c++20 -fsyntax-only -DOMPI_SKIP_MPICXX=1 -Wall -Wextra -Werror \
  -I"$BUILD/include" "$TMP/example.cc"
assert_ok "the README's C++ example compiles"
pass
