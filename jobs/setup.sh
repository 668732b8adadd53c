# shellcheck shell=bash
# Shared set-up for jobs/demo.sh and jobs/test.sh (sourced, not run).
#
# Installs any missing Debian packages (when apt-get exists and we are root),
# then configures and builds the Release tree.
#   ROOT  repository root (set here)
#   BUILD build directory (default $ROOT/build, override with GFS_BUILD_DIR)
#   GFS   path of the built gfs binary

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${GFS_BUILD_DIR:-$ROOT/build}"
GFS="$BUILD/gfs"

GFS_PACKAGES=(
  openmpi-bin libopenmpi-dev
  libboost-program-options-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  libisal-dev
  libhdf5-openmpi-dev hdf5-tools
  cmake g++ make pkg-config python3 clang-format gnuplot-nox
  iproute2 util-linux
)

gfs_log() { printf '==> %s\n' "$*" >&2; }

gfs_missing_packages() {
  local p status
  for p in "${GFS_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    if [[ "$status" != *"install ok installed"* ]]; then
      printf '%s\n' "$p"
    fi
  done
}

gfs_install_deps() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    gfs_log "dpkg-query not found: not a Debian system; make sure these are installed: ${GFS_PACKAGES[*]}"
    return 0
  fi
  local missing
  mapfile -t missing < <(gfs_missing_packages)
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]]; then
    echo "gfs setup: missing Debian packages: ${missing[*]}" >&2
    echo "gfs setup: install them as root with: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  gfs_log "installing missing packages: ${missing[*]}"
  local log
  log="$(mktemp)"
  if ! apt-get update >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    echo "gfs setup: apt-get update failed" >&2
    exit 1
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    echo "gfs setup: apt-get install failed for: ${missing[*]}" >&2
    exit 1
  fi
  rm -f "$log"
}

# gfs_build DIR [extra cmake configure args...]
gfs_build() {
  local dir="$1"; shift
  local log
  log="$(mktemp)"
  gfs_log "configuring $dir $*"
  if ! cmake -S "$ROOT" -B "$dir" "$@" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    echo "gfs setup: cmake configure failed ($dir)" >&2
    exit 1
  fi
  gfs_log "building $dir"
  if ! cmake --build "$dir" -j"$(nproc)" >"$log" 2>&1; then
    # Show the errors, not the whole log.
    grep -E -A5 'error|Error|undefined reference' "$log" | head -n 200 >&2 || cat "$log" >&2
    rm -f "$log"
    echo "gfs setup: build failed ($dir); full log: cmake --build $dir" >&2
    exit 1
  fi
  rm -f "$log"
}

gfs_install_deps
gfs_build "$BUILD" -DCMAKE_BUILD_TYPE=Release
if [[ ! -x "$GFS" ]]; then
  echo "gfs setup: build finished but $GFS is missing" >&2
  exit 1
fi
