#!/bin/bash
# The launcher forwards SIGTERM/SIGINT to the job: an interrupted `put` fed
# from stdin is reported as interrupted (exit 128+signal), not as a success,
# and no rank outlives the job.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

for sig in TERM INT; do
  log "sending SIG$sig to the launcher during a put from stdin"
  # stdin that stays open (and empty) for a long time
  rm -f "$TMP/rc"
  (set +e; "$GFS" --data-dir "$DATA" put - "/interrupted-$sig" >"$TMP/out" 2>"$TMP/err" < <(sleep 60); echo $? >"$TMP/rc") &
  sub=$!
  launcher=""
  for _ in $(seq 1 100); do
    launcher="$(pgrep -f "^$GFS --data-dir $DATA put" | head -1 || true)"
    # wait until the ranks are up too
    if [[ -n "$launcher" ]] && pgrep -f -- "--status-file .* put -- - /interrupted-$sig" >/dev/null; then break; fi
    sleep 0.1
  done
  [[ -n "$launcher" ]] || fail "launcher did not start"
  sleep 2
  kill -s "$sig" "$launcher"
  for _ in $(seq 1 300); do [[ -s "$TMP/rc" ]] && break; sleep 0.1; done
  [[ -s "$TMP/rc" ]] || fail "launcher did not exit within 30 s of SIG$sig"
  rc="$(cat "$TMP/rc")"
  want=$((128 + $(kill -l "$sig")))
  assert_eq "$want" "$rc" "launcher exit status after SIG$sig"
  grep -q "interrupted" "$TMP/err" || fail "no 'interrupted' message on stderr: $(cat "$TMP/err")"
  pkill -f "sleep 60" || true
  wait "$sub" 2>/dev/null || true
  # Nothing runs once the launcher is back (it waits for the ranks).
  left="$(_pids_matching "$DATA")"
  [[ -z "$left" ]] || fail "ranks still running after the launcher returned: $left"
  # All or nothing: the interrupted put left nothing under its name, and the
  # same put succeeds afterwards (its leftover temporary is collected then).
  run_gfs stat "/interrupted-$sig"
  assert_exit 1 "an interrupted put leaves nothing under the final name"
  printf 'retry %s\n' "$sig" >"$TMP/retry"
  run_gfs put "$TMP/retry" "/interrupted-$sig"
  assert_ok "put after the interrupted one"
  run_gfs ls /
  assert_not_contains "$OUT" ".gfs-tmp." "leftover temporaries of /interrupted-$sig"
done

# get: refused onto an existing local file without -f; with -f, an
# interrupted get leaves the old local file as it was, and nothing changes
# in the directory once the launcher is back.
rand_file "$TMP/big" $((64 * 1048576))
run_gfs put "$TMP/big" /big
assert_ok
echo "old content" >"$TMP/local"
run_gfs get /big "$TMP/local"
assert_exit 1 "get onto an existing local file without -f"
assert_one_error_line "already exists" "-f"
assert_eq "old content" "$(cat "$TMP/local")" "the refused get left the local file alone"
for sig in INT TERM; do
  bg_start "$GFS" --data-dir "$DATA" get -f /big "$TMP/local"
  launcher_pid="$BG_PID"
  # Freeze the client rank (rank 4: master, 3 chunkservers, client) as soon
  # as its temporary exists, so that the signal lands mid-transfer.
  client="$(wait_rank_pid 4)"
  for _ in $(seq 1 200000); do
    compgen -G "$TMP/.gfs-tmp.*" >/dev/null && break
  done
  kill -STOP "$client"
  compgen -G "$TMP/.gfs-tmp.*" >/dev/null || fail "get made no temporary file"
  gfs_pid="$(pgrep -P "$launcher_pid" -f "$GFS" | head -1 || true)"
  [[ -n "$gfs_pid" ]] || fail "no launcher under pid $launcher_pid"
  kill -s "$sig" "$gfs_pid"
  sleep 0.2
  kill -CONT "$client" 2>/dev/null || true
  bg_wait
  assert_exit $((128 + $(kill -l "$sig"))) "get interrupted by SIG$sig"
  before="$(ls -la --time-style=full-iso "$TMP" | grep -v -e ' cmd-' -e ' \.\.$' || true)"
  left="$(_pids_matching "$DATA")"
  [[ -z "$left" ]] || fail "ranks still running after the interrupted get returned: $left"
  sleep 1.5
  after="$(ls -la --time-style=full-iso "$TMP" | grep -v -e ' cmd-' -e ' \.\.$' || true)"
  assert_eq "$before" "$after" "the local directory changed after the launcher returned"
  assert_eq "old content" "$(cat "$TMP/local")" "an interrupted get -f left the old file alone"
  ! compgen -G "$TMP/.gfs-tmp.*" >/dev/null || fail "the interrupted get left its temporary"
done
pass
