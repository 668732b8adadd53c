#!/bin/bash
# A (scaled) 200 MiB random file, K=4 chunkservers, R=3, 8 MiB chunks:
# put in one job, get in a second job, identical bytes; every chunk on exactly
# 3 chunkserver directories with identical bytes; the push is a pipelined
# chain (client sends each byte once, also with every replica on this one
# node: only chunkservers write chunk files); the master carries no file data
# and a read costs a handful of lookups. While a put runs, no client rank has
# a chunk or checksum file open for writing (from /proc/PID/fd and fdinfo).
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

GLOBALS=(--chunkservers 4 --replication 3 --chunk-size 8M)
MB="$(scaled_mb 200)"
SIZE=$((MB * 1048576))
log "file size $MB MiB ($SIZE bytes), scale $SCALE"
rand_file "$TMP/in.bin" "$SIZE"

run_gfs --stats-dir "$TMP/s1" put "$TMP/in.bin" /big.bin
assert_ok "put"
assert_no_leftovers

run_gfs get /big.bin "$TMP/out.bin"
assert_ok "get"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get after put (second job)"

run_gfs stat --json /big.bin
assert_ok "stat --json"
assert_eq "$SIZE" "$(json_get size <<<"$OUT")" "stat size"
assert_eq 3 "$(json_get replication <<<"$OUT")" "stat replication"
assert_eq 8388608 "$(json_get chunk_size <<<"$OUT")" "stat chunk_size"
assert_eq file "$(json_get type <<<"$OUT")" "stat type"
assert_eq $(((SIZE + 8388607) / 8388608)) "$(json_count chunks <<<"$OUT")" "stat chunks"

# Replicas on disk.
python3 "$STATS_PY" chunks "$DATA" "$TMP/in.bin" 8388608 3 || fail "on-disk replica check"

# Chain push (stats of the put job).
python3 "$STATS_PY" chain "$TMP/s1" "$SIZE" 3 || fail "chain push check"

# The put's closing fsync: each chunkserver starts the device writes of all
# its replicas at the first sync request (one batch), none while writing.
CHUNKS=$(((SIZE + 8388607) / 8388608))
assert_eq 0 "$(python3 "$STATS_PY" sum "$TMP/s1" chunkserver writebacks_early)" "no early writeback by default"
assert_eq $((CHUNKS * 3)) "$(python3 "$STATS_PY" sum "$TMP/s1" chunkserver writebacks_batched)" \
  "fsync starts every replica's writes once"

# Early writeback (--writeback 1M): the chunkserver starts them as each
# write lands (a write is 8 MiB here), so the fsync finds nothing left to start.
run_gfs --writeback 1M --stats-dir "$TMP/s4" put "$TMP/in.bin" /wb.bin
assert_ok "put with --writeback 1M"
assert_eq 0 "$(python3 "$STATS_PY" sum "$TMP/s4" chunkserver writebacks_batched)" "nothing left at fsync"
assert_eq $((CHUNKS * 3)) "$(python3 "$STATS_PY" sum "$TMP/s4" chunkserver writebacks_early)" \
  "one early writeback per 8 MiB write per replica"
run_gfs get -f /wb.bin "$TMP/out.bin"
assert_ok "get after put with --writeback"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get after put with --writeback"
rm -f "$TMP/out.bin"

# sample_write_fds BG_PID DATA: while BG_PID runs, finds the job's ranks (their
# command line names DATA; the rank from OMPI_COMM_WORLD_RANK) and counts,
# every 5 ms, the chunk and checksum files each has open for writing
# (O_WRONLY or O_RDWR in /proc/PID/fdinfo). Prints "CLIENT_SEEN CS_SEEN":
# rank 5 is the client, ranks 1-4 the chunkservers. One process does it all:
# a shell loop forking per descriptor took longer than a whole put at R = 1
# on a busy machine.
sample_write_fds() {
  python3 - "$@" <<'PY'
import os, sys, time
bg, needle = sys.argv[1], sys.argv[2].encode()
seen = {"client": 0, "cs": 0}
ranks = {}  # pid -> rank
def rank_of(pid):
    if pid in ranks:
        return ranks[pid]
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        if needle not in b" ".join(argv) or argv[0].endswith((b"mpirun", b"orted", b"timeout")):
            return None
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    except OSError:
        return None
    r = env.get(b"OMPI_COMM_WORLD_RANK")
    if r is not None:
        ranks[pid] = int(r)
    return ranks.get(pid)
def writing(pid):
    n = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if not target.endswith((".chunk", ".crc")):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = next(int(l.split()[1], 8) for l in f if l.startswith("flags:"))
        except (OSError, StopIteration):
            continue
        if flags & 3:
            n += 1
    return n
while os.path.exists(f"/proc/{bg}"):
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        r = rank_of(d)
        if r == 5:
            seen["client"] += writing(d)
        elif r in (1, 2, 3, 4):
            seen["cs"] += writing(d)
    time.sleep(0.005)
print(seen["client"], seen["cs"])
PY
}

# watch_put R NAME: a put at R = R in the background; samples the client rank's
# and the chunkservers' open files until it ends. Only chunkservers write.
watch_put() {
  local r="$1" name="$2" counts client_seen cs_seen
  GLOBALS=(--chunkservers 4 --replication "$r" --chunk-size 8M)
  bg_start "$GFS" --data-dir "$DATA" "${GLOBALS[@]}" --stats-dir "$TMP/s-$name" put "$TMP/in.bin" "/$name"
  counts="$(sample_write_fds "$BG_PID" "$DATA")"
  read -r client_seen cs_seen <<<"$counts"
  bg_wait
  assert_ok "put at R=$r (watched)"
  assert_eq 0 "$client_seen" "chunk or checksum files the client rank had open for writing (R=$r)"
  [[ "$cs_seen" -gt 0 ]] || fail "the sampling never saw a chunkserver with a chunk file open (R=$r)"
  # Every byte went down the chain and was written by the chunkservers.
  assert_eq "$((MB * r))" "$(python3 "$STATS_PY" sum "$TMP/s-$name" chunkserver push_slices_recv)" \
    "every byte pushed to every replica in 1 MiB slices (R=$r)"
  assert_eq "$((SIZE * r))" "$(python3 "$STATS_PY" sum "$TMP/s-$name" chunkserver bytes_written)" \
    "every byte written by the chunkservers (R=$r)"
  run_gfs fsck --verify "/$name"
  assert_ok "fsck --verify after the watched put at R=$r"
  rm -f "$TMP/out.bin"
  run_gfs get "/$name" "$TMP/out.bin"
  assert_ok "get after the watched put at R=$r"
  assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get after the watched put at R=$r"
}
watch_put 3 r3.bin
watch_put 1 r1.bin
GLOBALS=(--chunkservers 4 --replication 3 --chunk-size 8M)

# Batched lookups (stats of a get job).
rm -f "$TMP/out.bin"
run_gfs --stats-dir "$TMP/s2" get -f /big.bin "$TMP/out.bin"
assert_ok "get with --stats-dir"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "second get"
python3 "$STATS_PY" read "$TMP/s2" "$SIZE" 5 local || fail "read path check (lookups, master off the data path)"

# The same through the chunkservers only.
rm -f "$TMP/out.bin"
run_gfs --no-short-circuit --stats-dir "$TMP/s3" get -f /big.bin "$TMP/out.bin"
assert_ok "get with --no-short-circuit"
assert_same_file "$TMP/in.bin" "$TMP/out.bin" "get through the chunkservers"
python3 "$STATS_PY" read "$TMP/s3" "$SIZE" 5 wire || fail "read path check (--no-short-circuit)"

pass
