#!/bin/bash
# Idle ranks sleep: while the client waits for its input (put from stdin with
# the data arriving late), the master and chunkservers must not busy-poll.
# Measures utime+stime of each rank over a few seconds; the storage ranks
# must average under 10% of a core.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

SLEEP=12        # seconds before the input arrives
WINDOW=3        # measurement window (seconds)
LIMIT=10        # percent of a core, average over storage ranks
HZ="$(getconf CLK_TCK)"
rand_file "$TMP/small" 54321

T0="$(date +%s.%N)"
mkfifo "$TMP/stdin"
( sleep "$SLEEP"; cat "$TMP/small" ) >"$TMP/stdin" &
_BG_PIDS+=("$!")
timeout -k 20 300 "$GFS" --data-dir "$DATA" put - /idle <"$TMP/stdin" >"$TMP/bg.out" 2>"$TMP/bg.err" &
BG=$!
_BG_PIDS+=("$BG")

# rank_pids: "pid rank" of this job's rank processes (they carry the Open MPI
# rank in their environment; the launcher and mpirun do not).
rank_pids() {
  local d pid cmd r
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    cmd="$(tr '\0' ' ' 2>/dev/null <"$d/cmdline")" || continue
    [[ "$cmd" == *"$GFS"* && "$cmd" == *"$DATA"* ]] || continue
    r="$(tr '\0' '\n' 2>/dev/null <"$d/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')" || continue
    [[ -n "$r" ]] && printf '%s %s\n' "$pid" "$r"
  done
}

# ticks PID: utime + stime in clock ticks.
ticks() {
  local s
  s="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo -1; return; }
  s="${s##*) }"            # drop "pid (comm) "
  awk '{ print $12 + $13 }' <<<"$s"   # fields 14 and 15 of the full line
}

EXPECT=5   # master + 3 chunkservers + 1 client (launcher defaults)
found=""
for i in $(seq 1 300); do
  found="$(rank_pids)"
  if [[ "$(grep -c . <<<"$found" || true)" -ge "$EXPECT" ]]; then break; fi
  if ! kill -0 "$BG" 2>/dev/null; then
    cat "$TMP/bg.err" >&2
    fail "the job ended before its ranks were seen (put - from stdin)"
  fi
  sleep 0.1
done
[[ "$(grep -c . <<<"$found" || true)" -ge "$EXPECT" ]] ||
  fail "found only these rank processes after 30 s: $found"
log "rank processes (pid rank): $(tr '\n' ' ' <<<"$found")"

sleep 1.5   # let start-up (registration, first heartbeats) finish

declare -A START RANK
while read -r pid r; do
  START[$pid]="$(ticks "$pid")"
  RANK[$pid]="$r"
done <<<"$found"
W0="$(date +%s.%N)"
sleep "$WINDOW"
declare -A END
for pid in "${!START[@]}"; do END[$pid]="$(ticks "$pid")"; done
W1="$(date +%s.%N)"

# The window must end before the input arrives, or it measured work.
awk -v a="$T0" -v b="$W1" -v s="$SLEEP" 'BEGIN { exit !(b - a < s - 0.5) }' ||
  fail "measurement window overlapped the transfer (ranks slow to start); inconclusive"

storage_sum=0; storage_n=0; report=""
for pid in "${!START[@]}"; do
  [[ "${START[$pid]}" != -1 && "${END[$pid]}" != -1 ]] || fail "rank process $pid vanished during the measurement"
  pct="$(awk -v d=$((END[$pid] - START[$pid])) -v hz="$HZ" -v a="$W0" -v b="$W1" \
    'BEGIN { printf "%.1f", 100 * d / hz / (b - a) }')"
  report+="rank ${RANK[$pid]}: ${pct}%  "
  if ((RANK[$pid] < EXPECT - 1)); then
    storage_sum="$(awk -v a="$storage_sum" -v b="$pct" 'BEGIN { print a + b }')"
    storage_n=$((storage_n + 1))
  fi
done
avg="$(awk -v s="$storage_sum" -v n="$storage_n" 'BEGIN { printf "%.1f", s / n }')"
log "per-rank CPU over ${WINDOW}s idle: $report"
echo "idle CPU per storage rank: ${avg}% of a core (average over $storage_n master/chunkserver ranks; limit ${LIMIT}%)"
assert_lt "$avg" "$LIMIT" "average idle CPU per storage rank (percent of a core)"

# The put then completes with the late input.
RC=0
wait "$BG" || RC=$?
_BG_PIDS=()
OUT_FILE="$TMP/bg.out"; ERR_FILE="$TMP/bg.err"; _LAST_CMD="gfs put - /idle (stdin)"
assert_ok "put - (from stdin)"
run_gfs cat /idle
assert_ok "cat /idle"
assert_same_file "$TMP/small" "$OUT_FILE" "data put from stdin"

pass
