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
    if [[ -n "$launcher" ]] && pgrep -f -- "--status-file .* put - /interrupted-$sig" >/dev/null; then break; fi
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
  assert_no_leftovers
done
pass
