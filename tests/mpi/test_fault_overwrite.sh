#!/bin/bash
# A kill during an overwrite of an fsynced file costs at most the overwritten
# range. A file is put (closed: durable on every replica), then `gfs write`
# overwrites a range across several chunks and the whole job is SIGKILLed
# while it writes (the page cache survives, as after any process kill). The
# next job finds every replica usable (fsck --verify healthy, after repair at
# R = 3), and in the file and in every replica the master lists every byte
# outside the range as the put wrote it and every byte inside it either the
# old or the new one (replicas may differ inside the range of a mutation the
# kill cut short). At R = 1 and R = 3, several kill moments each.
# Then the same with a write that extends the file past its fsynced end:
# what the replicas hold past the logged length becomes the file's (the
# acknowledged part of the write survives the kill).
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

# check_bytes WHAT GOT OLD NEW OFFSET [BASE]: GOT (a whole file read back, or
# one replica's chunk file holding the file's bytes from BASE) holds OLD's
# bytes outside [OFFSET, OFFSET + |NEW|) and, inside it, each byte either
# OLD's or NEW's; no byte past the end of both.
check_bytes() {
  python3 - "$@" <<'PY' || fail "$1: bytes after the killed write"
import sys
what, got_p, old_p, new_p, off = sys.argv[1:6]
base = int(sys.argv[6]) if len(sys.argv) > 6 else 0
got = open(got_p, "rb").read()
old = open(old_p, "rb").read()
new = open(new_p, "rb").read()
off = int(off)
end = off + len(new)
top = max(len(old), end)
assert base + len(got) <= top, f"{what}: {base + len(got)} bytes, past {top}"
B = 65536
for s in range(0, len(got), B):
    g = got[s:s + B]
    p = base + s
    q = p + len(g)
    if q <= off or p >= end:  # outside the range
        assert g == old[p:q], f"{what}: bytes {p}..{q} outside the written range changed"
        continue
    o = old[p:q] + bytes(max(0, q - max(p, len(old))))
    n = bytes(off - p) if p < off else b""
    n = (n + new[max(p, off) - off:q - off])
    n = n + o[len(n):]
    if g == o or g == n:
        continue
    for i in range(len(g)):
        pos = p + i
        inside = off <= pos < end
        if not inside:
            assert g[i] == o[i], f"{what}: byte {pos} outside the range changed"
        elif g[i] != o[i] and g[i] != new[pos - off]:
            raise SystemExit(f"{what}: byte {pos} is neither old nor new")
PY
}

# replica_bytes WHAT OLD NEW OFFSET: the check above on every replica the
# master lists of every chunk of /f (each replica's own bytes: replicas may
# differ inside the range of a mutation that did not complete).
replica_bytes() {
  run_gfs fsck --json /f
  assert_ok "fsck --json (replica list)"
  printf '%s' "$OUT" >"$TMP/fsck.json"
  python3 - "$TMP/fsck.json" "$DATA" >"$TMP/replicas" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["files"][0]
cs = 8 * 1048576
for ch in f["chunk_list"]:
    for rep in ch["replicas"]:  # named by the directory the chunkserver serves
        print(f'{sys.argv[2]}/{rep["dir"]}/chunks/{ch["handle"]}.chunk {ch["index"] * cs}')
PY
  [[ -s "$TMP/replicas" ]] || fail "$1: no replica listed"
  local path base
  while read -r path base; do
    check_bytes "$1: $(basename "$path")" "$path" "$2" "$3" "$4" "$base"
  done <"$TMP/replicas"
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
    check_bytes "R = $r, trial $t" "$TMP/out.bin" "$TMP/old.bin" "$TMP/new.bin" "$OFF"
    replica_bytes "R = $r, trial $t" "$TMP/old.bin" "$TMP/new.bin" "$OFF"
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
  check_bytes "extending write, trial $t" "$TMP/out.bin" "$TMP/base.bin" "$TMP/new.bin" $((18 * MB))
  replica_bytes "extending write, trial $t" "$TMP/base.bin" "$TMP/new.bin" $((18 * MB))
done
pass
