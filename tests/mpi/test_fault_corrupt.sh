#!/bin/bash
# Flipped bytes in chunk files on disk, several seeds and positions: every
# read returns the right bytes; fsck --verify finds the corrupt replicas no
# read touched; re-replication repairs them (on disk, R identical copies of
# the right bytes again). Background scrubbing: a flipped byte in a chunk
# nobody reads is found by the chunkservers' scrubbers and repaired.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp
PROG="$GFS_TEST_PROGRAMS/fault_client"
CHUNK=1048576
NCHUNK=6
rand_file "$TMP/in.bin" $((NCHUNK * CHUNK - 12345))
GLOBALS=(--chunk-size 1M --scrub-mb-per-s 0)
run_gfs put "$TMP/in.bin" /f
assert_ok "put"

# replicas_ok: every chunk of /f has 3 replicas on disk, each exactly the
# file's bytes of that chunk.
replicas_ok() {
  local k h want n f
  for ((k = 0; k < NCHUNK; k++)); do
    h="$(printf '%016x' $((k + 1)))"
    want="$(dd if="$TMP/in.bin" bs=$CHUNK skip=$k count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
    n=0
    for f in "$DATA"/chunkserver-*/chunks/"$h".chunk; do
      [[ -f "$f" ]] || continue
      assert_eq "$want" "$(sha256sum <"$f" | cut -d' ' -f1)" "$1: replica $f of chunk $k"
      n=$((n + 1))
    done
    assert_eq 3 "$n" "$1: replicas of chunk $k"
  done
}

# flip SEED N [LIST]: flips one byte in each of N distinct random replicas
# (random chunk, random offset inside its data), taken from the chunk files
# named in LIST (one per line) or else from every chunk file on disk; prints
# "path offset" per flip.
flip() {
  python3 - "$DATA" "$1" "$2" "${3:-}" <<'PY'
import glob, random, sys
data, seed, n, listed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
if listed:
    files = sorted(l.strip() for l in open(listed) if l.strip())
else:
    files = sorted(glob.glob(data + "/chunkserver-*/chunks/*.chunk"))
for path in rng.sample(files, n):
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        off = rng.randrange(size)
        f.seek(off)
        b = f.read(1)[0]
        f.seek(off)
        f.write(bytes([b ^ (1 << rng.randrange(8))]))
    print(path, off)
PY
}

# still_flipped: how many of the flipped replicas are still on disk (not yet
# deleted after a read found them).
still_flipped() {
  local n=0 path off
  while read -r path off; do
    [[ -f "$path" ]] && n=$((n + 1))
  done <"$TMP/flips"
  echo "$n"
}

if awk -v s="$SCALE" 'BEGIN { exit !(s < 1) }'; then SEEDS=(11 12); else SEEDS=(21 22 23); fi
for seed in "${SEEDS[@]}"; do
  flip "$seed" 3 >"$TMP/flips"
  log "seed $seed: flipped $(tr '\n' ' ' <"$TMP/flips")"
  # Reads never return the flipped bytes (a replica failing its checksum is
  # reported and the read goes to another).
  run_gfs get -f /f "$TMP/out.bin"
  assert_ok "get (seed $seed)"
  assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get with corrupt replicas (seed $seed)"
  # fsck --verify finds every corrupt replica still there (those no read
  # touched; the ones a read found were deleted).
  left="$(still_flipped)"
  run_gfs fsck --verify --json /f
  assert_exit 4 "fsck --verify with corrupt replicas (seed $seed)"
  got="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["corrupt_replicas"])' <<<"$OUT")"
  assert_eq "$left" "$got" "corrupt replicas found by --verify (seed $seed)"
  # Repair in one job: verify, then re-replication until healthy.
  run_gfs --heartbeat-ms 200 --lease-seconds 5 fsck --verify --wait 60 --json
  assert_ok "fsck --verify --wait repairs (seed $seed)"
  assert_eq healthy "$(json_get status <<<"$OUT")" "status after repair (seed $seed)"
  replicas_ok "after repair (seed $seed)"
done

# Scrubbing: one flipped byte in a replica nobody reads; the job only asks
# the master (fsck without --verify) until the damaged replica shows up or is
# repaired. The replica is one the master counts as live: a file an
# earlier repair left behind for garbage collection is not reported by fsck.
run_gfs fsck --json /f
assert_ok "fsck before scrubbing"
printf '%s' "$OUT" >"$TMP/fsck.json"
python3 - "$DATA" "$TMP/fsck.json" >"$TMP/live" <<'PY' || fail "scrub: no live replica listed"
import json, sys
data = sys.argv[1]
live = []
for ch in json.load(open(sys.argv[2]))["files"][0]["chunk_list"]:
    for rep in ch["replicas"]:  # named by the directory the chunkserver serves
        live.append(f"{data}/{rep['dir']}/chunks/{ch['handle']}.chunk")
assert live
print("\n".join(live))
PY
flip 99 1 "$TMP/live" >"$TMP/flips" || fail "scrub: no live replica to flip"
log "scrub: flipped $(cat "$TMP/flips")"
mkdir -p "$TMP/w"
read -r flipped _ <"$TMP/flips"
fh="$(basename "$flipped" .chunk)"
# The scrubber finds it and the master has it repaired in place: the job
# sees the replica listed as damaged, or (the repair being quick) the file
# holding the right bytes again.
run_cmd "${MPIRUN_RECOVERY[@]}" -np 5 "$PROG" scrub "$DATA" "$TMP/w" cs=3 r=3 hb=200 lease=5 \
  scrub=64 path=/f local="$TMP/in.bin" wait=60 replica="$flipped" chunk=$CHUNK index=$((16#$fh - 1))
[[ -s "$TMP/w/result" ]] || fail "no result written: $ERR"
log "scrub result: $(cat "$TMP/w/result")"
[[ "$(cat "$TMP/w/result")" == OK* ]] || fail "scrub: $(cat "$TMP/w/result")"
replicas_ok "after scrubbing"
run_gfs fsck --verify
assert_ok "fsck --verify after scrubbing and repair"
pass
