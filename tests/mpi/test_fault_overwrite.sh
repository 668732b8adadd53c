#!/bin/bash
# A kill during an overwrite of an fsynced file costs at most the overwritten
# range. A file is put (closed: durable on every replica), then `gfs write`
# overwrites a range across several chunks and the whole job is SIGKILLed
# while it writes (the page cache survives, as after any process kill). The
# next job finds every replica usable (fsck --verify healthy, after repair at
# R = 3), every byte outside the range as the put wrote it, and every byte
# inside it either the old or the new one; every replica of a chunk holds the
# same bytes. At R = 1 and R = 3, several kill moments each.
# Then the same with a write that extends the file past its fsynced end
# (replicas may end at different lengths when the job dies): every fsynced
# byte survives and the replicas of each chunk end up identical.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
MB=1048576
if awk -v s="$SCALE" 'BEGIN { exit !(s < 1) }'; then TRIALS=2; else TRIALS=4; fi
rand_file "$TMP/old.bin" $((40 * MB))
rand_file "$TMP/new.bin" $((24 * MB))
OFF=$((6 * MB + 12345))  # the overwrite: [OFF, OFF + 24 MiB), across chunks 0..3 of 8 MiB

# kill_while_writing LOCAL OFFSET: starts `gfs write /f OFFSET LOCAL` and
# SIGKILLs the whole job soon after the first chunk file it writes changes.
kill_while_writing() {
  local first="$DATA/chunkserver-0/chunks" before now i
  before="$(cat "$first"/*.chunk 2>/dev/null | md5sum)"
  bg_start "$GFS" --data-dir "$DATA" "${GLOBALS[@]}" write /f "$2" "$1"
  for i in $(seq 1 1000); do
    now="$(cat "$first"/*.chunk 2>/dev/null | md5sum)"
    [[ "$now" != "$before" ]] && break
    bg_running || break
    sleep 0.01
  done
  sleep "0.0$((RANDOM % 8))"
  if bg_running; then
    kill_job "$DATA"
    KILLED=$((KILLED + 1))
  fi
  wait "$BG_PID" 2>/dev/null || true
  assert_no_leftovers
}

# replicas_agree: the replicas of every chunk on disk hold the same bytes.
replicas_agree() {
  local h sums
  for h in $(ls "$DATA"/chunkserver-*/chunks/ | grep '\.chunk$' | sort -u); do
    sums="$(md5sum "$DATA"/chunkserver-*/chunks/"$h" 2>/dev/null | awk '{print $1}' | sort -u | grep -c .)"
    assert_eq 1 "$sums" "$1: distinct contents among the replicas of $h"
  done
}

KILLED=0
for r in 1 3; do
  for t in $(seq 1 "$TRIALS"); do
    log "R = $r, trial $t: overwrite killed"
    DATA="$TMP/d$r-$t"
    GLOBALS=(--chunkservers 3 --replication "$r" --chunk-size 8M --heartbeat-ms 200 --lease-seconds 5
      --scrub-mb-per-s 0)
    run_gfs put "$TMP/old.bin" /f
    assert_ok "put"
    kill_while_writing "$TMP/new.bin" "$OFF"
    run_gfs fsck --verify --wait 60 --json /f
    assert_ok "fsck --verify after the killed overwrite (R = $r, trial $t)"
    rm -f "$TMP/out.bin"
    run_gfs get /f "$TMP/out.bin"
    assert_ok "get after the killed overwrite"
    python3 - "$TMP/old.bin" "$TMP/new.bin" "$TMP/out.bin" "$OFF" <<'PY' || fail "R = $r, trial $t: bytes after the killed overwrite"
import sys
old = open(sys.argv[1], "rb").read()
new = open(sys.argv[2], "rb").read()
out = open(sys.argv[3], "rb").read()
off = int(sys.argv[4])
end = off + len(new)
assert len(out) in (len(old), max(len(old), end)), f"length {len(out)}"
assert out[:off] == old[:off], "bytes before the overwritten range changed"
assert out[end:len(old)] == old[end:], "bytes after the overwritten range changed"
for i in range(off, min(end, len(out))):
    if out[i] != old[i] and out[i] != new[i - off]:
        raise SystemExit(f"byte {i} is neither old nor new")
PY
    replicas_agree "R = $r, trial $t"
  done
done
log "$KILLED of $((2 * TRIALS)) overwrites were killed while writing"

# A write past the fsynced end, killed: the fsynced bytes survive, replicas
# of one chunk at one version end up with one length and the same bytes.
for t in $(seq 1 "$TRIALS"); do
  log "R = 3, trial $t: extending write killed"
  DATA="$TMP/e-$t"
  GLOBALS=(--chunkservers 3 --replication 3 --chunk-size 8M --heartbeat-ms 200 --lease-seconds 5
    --scrub-mb-per-s 0)
  head -c $((20 * MB)) "$TMP/old.bin" >"$TMP/base.bin"
  run_gfs put "$TMP/base.bin" /f
  assert_ok "put"
  kill_while_writing "$TMP/new.bin" $((18 * MB))
  run_gfs fsck --verify --wait 60 --json /f
  assert_ok "fsck --verify after the killed extending write (trial $t)"
  rm -f "$TMP/out.bin"
  run_gfs get /f "$TMP/out.bin"
  assert_ok "get after the killed extending write"
  cmp -s <(head -c $((18 * MB)) "$TMP/base.bin") <(head -c $((18 * MB)) "$TMP/out.bin") ||
    fail "trial $t: fsynced bytes before the write changed"
  replicas_agree "extending write, trial $t"
done
pass
