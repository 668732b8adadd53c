# shellcheck shell=bash
# Helpers for the MPI integration tests (sourced by tests/mpi/test_*.sh).
#
# Environment (set by tests/CMakeLists.txt when run through CTest):
#   GFS_BIN         path of build/gfs
#   GFS_TEST_SCALE  data-size scale (default 1; CI uses less)
#   GFS_TIMEOUT     per-command timeout in seconds (default 300)
#   GFS_KEEP_TMP=1  keep the test's temp directory (data dir, outputs)
#
# Variables after sourcing: GFS, SCALE, TEST_NAME, HERE (this directory),
# STATS_PY; after mk_tmp: TMP, DATA. GLOBALS is an array of global options
# that run_gfs puts after --data-dir (a test sets it once, e.g.
# GLOBALS=(--chunkservers 4 --replication 3 --chunk-size 8M)).
#
# After run_gfs: RC (exit status), OUT / ERR (stdout / stderr text),
# OUT_FILE / ERR_FILE (the files they were captured in), ELAPSED (seconds).

if [[ -z "${GFS_BIN:-}" ]]; then
  echo "lib.sh: GFS_BIN is not set (run through ctest, or export GFS_BIN=build/gfs)" >&2
  exit 1
fi
GFS="$(cd "$(dirname "$GFS_BIN")" && pwd)/$(basename "$GFS_BIN")"
if [[ ! -x "$GFS" ]]; then
  echo "lib.sh: $GFS is not an executable" >&2
  exit 1
fi
SCALE="${GFS_TEST_SCALE:-1}"
GFS_TIMEOUT="${GFS_TIMEOUT:-300}"
TEST_NAME="$(basename "$0" .sh)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATS_PY="$HERE/stats.py"
GLOBALS=()
TMP=""
DATA=""
_RUN_SEQ=0
_BG_PIDS=()

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }

# fail MSG...: print a clear failure (with the last command's output) and exit 1.
fail() {
  echo "FAIL: $TEST_NAME: $*" >&2
  if [[ -n "${_LAST_CMD:-}" ]]; then
    echo "  last command: $_LAST_CMD" >&2
    echo "  exit status: ${RC:-?}" >&2
    if [[ -s "${OUT_FILE:-/dev/null}" ]]; then
      echo "  --- stdout (first 40 lines) ---" >&2
      head -n 40 "$OUT_FILE" | head -c 4000 | cat -v >&2
    fi
    if [[ -s "${ERR_FILE:-/dev/null}" ]]; then
      echo "  --- stderr (first 40 lines) ---" >&2
      head -n 40 "$ERR_FILE" | head -c 4000 | cat -v >&2
    fi
  fi
  exit 1
}

pass() { echo "PASS: $TEST_NAME"; }

# scaled_mb N: max(1, round(N * SCALE))
scaled_mb() {
  awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s + 0.5); if (v < 1) v = 1; print v }'
}

_cleanup() {
  local rc=$?
  local p
  for p in "${_BG_PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    # Ranks that outlived their job would keep files open: name and end them.
    local left
    left="$(_pids_matching "$TMP")"
    if [[ -n "$left" ]]; then
      echo "[$TEST_NAME] WARNING: processes still running at exit: $left" >&2
      kill -9 $left 2>/dev/null || true
    fi
    if [[ "${GFS_KEEP_TMP:-0}" == 1 ]]; then
      echo "[$TEST_NAME] kept $TMP" >&2
    else
      rm -rf "$TMP"
    fi
  fi
  return $rc
}

# mk_tmp: make the test's temp directory ($TMP) with a data dir path ($DATA).
mk_tmp() {
  TMP="$(mktemp -d "${GFS_TEST_TMPDIR:-${TMPDIR:-/tmp}}/gfs-$TEST_NAME.XXXXXX")"
  DATA="$TMP/data"
  trap _cleanup EXIT
  trap 'exit 130' INT TERM
}

# _pids_matching STRING: pids (not ours) whose command line contains STRING.
_pids_matching() {
  local needle="$1" d pid cmd
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    cmd="$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")" || continue
    [[ "$cmd" == *"$needle"* ]] || continue
    [[ "$cmd" == *"$GFS"* || "$cmd" == *mpirun* || "$cmd" == *orted* ]] || continue
    printf '%s ' "$pid"
  done
}

# assert_no_leftovers [DIR]: no gfs/mpirun process still runs on DIR (default
# $DATA); allows a few seconds for ranks to exit.
assert_no_leftovers() {
  local dir="${1:-$DATA}" i left=""
  for _ in $(seq 1 50); do
    left="$(_pids_matching "$dir")"
    [[ -z "$left" ]] && return 0
    sleep 0.1
  done
  local p
  for p in $left; do
    echo "  $p: $(tr '\0' ' ' 2>/dev/null </proc/$p/cmdline)" >&2
  done
  fail "processes still running 5 s after the job ended: $left"
}

# run_gfs ARGS...: run the launcher on $DATA with $GLOBALS, stdin from
# /dev/null; capture output; never exits the test by itself.
run_gfs() { run_gfs_stdin /dev/null "$@"; }

# run_gfs_stdin FILE ARGS...: as run_gfs with stdin from FILE.
run_gfs_stdin() {
  local in="$1"; shift
  run_cmd_stdin "$in" "$GFS" --data-dir "$DATA" "${GLOBALS[@]}" "$@"
}

# run_cmd ARGS...: run any command (e.g. mpirun ... $GFS ...) under the timeout
# with the same capture as run_gfs.
run_cmd() { run_cmd_stdin /dev/null "$@"; }

run_cmd_stdin() {
  local in="$1"; shift
  _RUN_SEQ=$((_RUN_SEQ + 1))
  OUT_FILE="$TMP/cmd-$_RUN_SEQ.out"
  ERR_FILE="$TMP/cmd-$_RUN_SEQ.err"
  _LAST_CMD="${*/#$GFS/gfs}"
  local t0 t1
  t0="$(date +%s%N)"
  RC=0
  timeout -k 20 "$GFS_TIMEOUT" "$@" <"$in" >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
  t1="$(date +%s%N)"
  ELAPSED="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
  OUT="$(tr -d '\0' <"$OUT_FILE")"
  ERR="$(tr -d '\0' <"$ERR_FILE")"
  log "\$ $_LAST_CMD  -> exit $RC (${ELAPSED}s)"
  if ((RC == 124 || RC == 137)); then
    fail "command timed out after ${GFS_TIMEOUT}s"
  fi
  return 0
}

# assert_exit EXPECTED [MSG]: the last command's exit status.
assert_exit() {
  local want="$1" msg="${2:-}"
  if [[ "$RC" != "$want" ]]; then
    fail "expected exit status $want, got $RC${msg:+ ($msg)}"
  fi
}

# assert_ok [MSG]: the last command succeeded.
assert_ok() { assert_exit 0 "${1:-}"; }

# assert_fails [MSG]: the last command failed (non-zero, not a timeout/signal).
assert_fails() {
  local msg="${1:-}"
  if [[ "$RC" == 0 ]]; then
    fail "expected a non-zero exit status, got 0${msg:+ ($msg)}"
  fi
  if ((RC >= 124)); then
    fail "expected an error exit, got $RC (timeout or signal)${msg:+ ($msg)}"
  fi
}

# assert_eq EXPECTED ACTUAL [MSG]
assert_eq() {
  if [[ "$1" != "$2" ]]; then
    fail "${3:-values differ}: expected '$1', got '$2'"
  fi
}

# assert_contains HAYSTACK NEEDLE [MSG]
assert_contains() {
  if [[ "$1" != *"$2"* ]]; then
    fail "${3:-missing text}: expected to find '$2' in: $(printf '%s' "$1" | head -c 2000)"
  fi
}

# assert_not_contains HAYSTACK NEEDLE [MSG]
assert_not_contains() {
  if [[ "$1" == *"$2"* ]]; then
    fail "${3:-unexpected text}: did not expect '$2' in: $(printf '%s' "$1" | head -c 2000)"
  fi
}

# assert_lt A B [MSG]: numeric A < B (decimals allowed).
assert_lt() {
  if ! awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; then
    fail "${3:-comparison failed}: expected $1 < $2"
  fi
}

# assert_same_file EXPECTED ACTUAL [MSG]: byte-identical (sha256).
assert_same_file() {
  [[ -f "$2" ]] || fail "${3:-file missing}: $2 does not exist"
  local a b
  a="$(sha256sum <"$1" | cut -d' ' -f1)"
  b="$(sha256sum <"$2" | cut -d' ' -f1)"
  if [[ "$a" != "$b" ]]; then
    fail "${3:-files differ}: $1 (sha256 $a, $(stat -c %s "$1") bytes) vs $2 (sha256 $b, $(stat -c %s "$2") bytes)"
  fi
}

# stderr_lines: number of non-empty lines on the last command's stderr.
stderr_lines() { grep -c . "$ERR_FILE" || true; }

# assert_one_error_line NEEDLE...: stderr is exactly one line containing every NEEDLE.
assert_one_error_line() {
  local n
  n="$(stderr_lines)"
  if [[ "$n" != 1 ]]; then
    fail "expected exactly one line on stderr, got $n"
  fi
  local s
  for s in "$@"; do
    assert_contains "$ERR" "$s" "error line"
  done
}

# rand_file PATH BYTES: random content.
rand_file() { head -c "$2" /dev/urandom >"$1"; }

# json_get KEY [KEY...] < JSON: print a field (nested keys allowed).
json_get() { python3 "$STATS_PY" get "$@"; }
# json_count KEY...: as json_get, but a list prints its length ("chunks" may be
# a count or a list of handles).
json_count() { python3 "$STATS_PY" count "$@"; }

# chunk_dirs: the chunkserver directories of $DATA.
chunk_dirs() { find "$DATA" -maxdepth 1 -type d -name 'chunkserver-*' | sort; }

# mpirun_rank NP ARGS...: rank mode (the user launches mpirun themselves).
mpirun_rank() {
  local np="$1"; shift
  run_cmd mpirun --allow-run-as-root --oversubscribe -q -np "$np" "$GFS" "$@"
}

# ---- fault injection (tests/mpi/test_fault_*.sh) ----

# job_rank_pid RANK [NEEDLE]: pid of the process that is MPI rank RANK of the
# running job whose command line contains NEEDLE (default $DATA); empty if
# there is none. Ranks carry OMPI_COMM_WORLD_RANK in their environment;
# mpirun and the launcher do not.
job_rank_pid() {
  local want="$1" needle="${2:-$DATA}" f pid cmd r
  # One grep over every command line first: reading each process's files
  # from the shell takes seconds on a busy machine.
  for f in $(grep -lsF -- "$needle" /proc/[0-9]*/cmdline 2>/dev/null); do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    cmd="$(tr '\0' ' ' 2>/dev/null <"$f")" || continue
    # By the program's name: a rank's own arguments may name mpirun
    # (--mpirun-args, passed on by the launcher).
    cmd="${cmd%% *}"
    [[ "$cmd" == *mpirun || "$cmd" == *orted || "$cmd" == timeout ]] && continue
    r="$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')" ||
      continue
    if [[ "$r" == "$want" ]]; then
      echo "$pid"
      return 0
    fi
  done
}

# kill_rank RANK [NEEDLE]: SIGKILL that rank of the running job; fails the
# test when it is not running. (To kill at an exact moment, look the pid up
# beforehand with job_rank_pid and kill -9 it then.)
kill_rank() {
  local pid
  pid="$(job_rank_pid "$@")"
  [[ -n "$pid" ]] || fail "rank $1 is not running (nothing to kill)"
  kill -9 "$pid"
  log "SIGKILL rank $1 (pid $pid)"
}

# wait_rank_pid RANK [NEEDLE]: job_rank_pid, waiting up to 30 s for the rank
# to start; fails the test if it does not.
wait_rank_pid() {
  local pid="" i
  for i in $(seq 1 300); do
    pid="$(job_rank_pid "$@")"
    [[ -n "$pid" ]] && break
    sleep 0.1
  done
  [[ -n "$pid" ]] || fail "rank $1 did not start"
  echo "$pid"
}

# bg_start ARGS...: run a command in the background under the timeout, output
# captured like run_cmd's; BG_PID is its pid (wait for it with bg_wait).
bg_start() {
  _RUN_SEQ=$((_RUN_SEQ + 1))
  OUT_FILE="$TMP/cmd-$_RUN_SEQ.out"
  ERR_FILE="$TMP/cmd-$_RUN_SEQ.err"
  _LAST_CMD="${*/#$GFS/gfs}"
  _BG_T0="$(date +%s%N)"
  timeout -k 20 "$GFS_TIMEOUT" "$@" </dev/null >"$OUT_FILE" 2>"$ERR_FILE" &
  BG_PID=$!
  _BG_PIDS+=("$BG_PID")
  log "\$ $_LAST_CMD &  (pid $BG_PID)"
}

# bg_running: the background command is still running.
bg_running() { kill -0 "$BG_PID" 2>/dev/null; }

# bg_wait: wait for the background command; sets RC, OUT, ERR, ELAPSED.
bg_wait() {
  RC=0
  wait "$BG_PID" || RC=$?
  local t1
  t1="$(date +%s%N)"
  ELAPSED="$(awk -v a="$_BG_T0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
  OUT="$(tr -d '\0' <"$OUT_FILE")"
  ERR="$(tr -d '\0' <"$ERR_FILE")"
  log "  (pid $BG_PID) $_LAST_CMD  -> exit $RC (${ELAPSED}s)"
  if ((RC == 124 || RC == 137)); then
    fail "command timed out after ${GFS_TIMEOUT}s"
  fi
}

# wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds; returns 1
# if it never did.
wait_for() {
  local until_ns=$(($(date +%s%N) + $1 * 1000000000))
  shift
  while ! "$@"; do
    (($(date +%s%N) < until_ns)) || return 1
    sleep 0.05
  done
}

# MPIRUN_RECOVERY: mpirun and the flags for a job that survives a killed rank
# (as the launcher runs it): --enable-recovery, and no barrier at the start of
# MPI_Finalize, which can otherwise wait for the dead rank for ever.
MPIRUN_RECOVERY=(mpirun --allow-run-as-root --oversubscribe --enable-recovery -q
  --mca async_mpi_finalize 1 --mca rtc_hwloc_vmhole none)

# mpirun_prog_bg NP PROGRAM ARGS...: a test program under MPIRUN_RECOVERY, in
# the background (bg_start).
mpirun_prog_bg() {
  local np="$1"
  shift
  bg_start "${MPIRUN_RECOVERY[@]}" -np "$np" "$@"
}

# kill_job NEEDLE: SIGKILL at once every process whose command line contains
# NEEDLE (mpirun, its ranks, the timeout around it): a whole job dies as in a
# power cut of its processes (the kernel keeps what they wrote).
kill_job() {
  local f pid pids=()
  for f in $(grep -lsF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null); do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    pids+=("$pid")
  done
  ((${#pids[@]} > 0)) || fail "kill_job: nothing runs with '$1'"
  kill -9 "${pids[@]}" 2>/dev/null || true
  log "SIGKILL ${#pids[@]} processes of the job (${pids[*]})"
}
