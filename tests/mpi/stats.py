#!/usr/bin/env python3
"""Helpers for the MPI tests: JSON fields and checks on --stats-dir output.

  stats.py get KEY [KEY...]              < JSON   print a (nested) field
  stats.py count KEY [KEY...]            < JSON   same; a list prints its length
  stats.py chain DIR SIZE R                        chain-push checks (put job)
  stats.py read DIR SIZE MAX_LOOKUPS [local|wire]  read-path checks (get job); local: all
                                                   short-circuit, wire: none (--no-short-circuit)
  stats.py chunks DATA_DIR FILE CHUNK_SIZE R       on-disk replica checks
  stats.py sum DIR ROLE COUNTER                    print a counter summed over a role's ranks
  stats.py links DIR SIZE R chain|star HOST...     bytes of pushed data on each host's link
                                                   (put job; HOST i: where rank i ran)

Every check prints what it measured and exits 1 with "FAIL: ..." lines when
something does not hold.
"""
import glob
import hashlib
import json
import math
import os
import sys

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def finish(what):
    if failures:
        for f in failures:
            print(f"FAIL: {what}: {f}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def load_stats(d):
    files = sorted(glob.glob(os.path.join(d, "rank-*.json")))
    if not files:
        print(f"FAIL: no rank-*.json files in {d}", file=sys.stderr)
        sys.exit(1)
    ranks = {}
    for f in files:
        with open(f) as fh:
            try:
                st = json.load(fh)
            except json.JSONDecodeError as e:
                print(f"FAIL: {f}: not JSON: {e}", file=sys.stderr)
                sys.exit(1)
        expect = int(os.path.basename(f)[len("rank-"):-len(".json")])
        if int(st.get("rank", -1)) != expect:
            print(f"FAIL: {f}: rank field {st.get('rank')} != {expect}", file=sys.stderr)
            sys.exit(1)
        ranks[expect] = st
    return ranks


def roles(ranks):
    by = {}
    for r, st in ranks.items():
        by.setdefault(st.get("role"), []).append(r)
    return {k: sorted(v) for k, v in by.items()}


def counter(st, name):
    c = st.get("counters", {})
    if name not in c:
        failures.append(f"rank {st['rank']} ({st.get('role')}): counter '{name}' missing "
                        f"(has: {sorted(c)})")
        return 0
    return int(c[name])


def peer_totals(st):
    tot = {"msgs_sent": 0, "bytes_sent": 0, "msgs_recv": 0, "bytes_recv": 0}
    for p in st.get("peers", {}).values():
        for k in tot:
            tot[k] += int(p.get(k, 0))
    return tot


def cmd_get(keys, count=False):
    v = json.load(sys.stdin)
    for k in keys:
        if isinstance(v, list):
            v = v[int(k)]
        else:
            if k not in v:
                print(f"FAIL: key '{k}' not in JSON object with keys {sorted(v)}", file=sys.stderr)
                sys.exit(1)
            v = v[k]
    if count and isinstance(v, list):
        v = len(v)
    print(json.dumps(v) if isinstance(v, (dict, list)) else v)


def common_role_checks(ranks, by):
    check(by.get("master") == [0], f"expected rank 0 to be the only master, roles: {by}")
    check(len(by.get("client", [])) >= 1, f"no client rank, roles: {by}")
    check(len(by.get("chunkserver", [])) >= 1, f"no chunkserver rank, roles: {by}")


def cmd_chain(d, size, r):
    ranks = load_stats(d)
    by = roles(ranks)
    common_role_checks(ranks, by)
    if failures:
        finish("chain")
    master = ranks[0]
    clients = by["client"]
    servers = by["chunkserver"]
    print(f"roles: master 0, chunkservers {servers}, clients {clients}")

    # The client pushed every byte once (not R times).
    sent = sum(counter(ranks[c], "push_bytes_sent") for c in clients)
    print(f"client push_bytes_sent = {sent} (file size {size})")
    check(sent == size, f"client push_bytes_sent {sent} != file size {size}")
    # Independent of the client's own counter: its wire bytes are ~1x, not Rx.
    csent = sum(peer_totals(ranks[c])["bytes_sent"] for c in clients)
    print(f"client bytes_sent on the wire = {csent}")
    check(size <= csent <= size * 1.05 + (4 << 20),
          f"client sent {csent} bytes on the wire for a {size}-byte file (expected ~1x)")

    # The master stays off the data path.
    fbr = counter(master, "file_bytes_received")
    mt = peer_totals(master)
    print(f"master file_bytes_received = {fbr}; master wire bytes recv {mt['bytes_recv']} "
          f"sent {mt['bytes_sent']}")
    check(fbr == 0, f"master file_bytes_received {fbr} != 0")
    check(not any(int(v) for v in master.get("push_bytes_from", {}).values()),
          f"master received pushed data: {master.get('push_bytes_from')}")
    limit = max(1 << 20, size // 50)
    check(mt["bytes_recv"] < limit,
          f"master received {mt['bytes_recv']} bytes on the wire (>= {limit}): file data?")

    # Each chunkserver gets pushed data only from the client or other chunkservers;
    # the client feeds each byte to one chain head; R copies in total.
    allowed = set(clients) | set(servers)
    total = from_client = from_servers = 0
    for s in servers:
        pbf = {int(k): int(v) for k, v in ranks[s].get("push_bytes_from", {}).items()}
        print(f"chunkserver {s} push_bytes_from {pbf}")
        for src, b in pbf.items():
            check(src in allowed and src != s,
                  f"chunkserver {s} received {b} push bytes from rank {src} "
                  f"(allowed: client or another chunkserver)")
            total += b
            if src in clients:
                from_client += b
            elif src in servers:
                from_servers += b
    print(f"push bytes received by chunkservers: total {total} "
          f"(= {total / size if size else 0:.3f} x size), from client {from_client}, "
          f"from chunkservers {from_servers}")
    check(total == r * size, f"chunkservers received {total} push bytes, expected {r} x {size}")
    check(from_client == size,
          f"chunkservers received {from_client} bytes from the client, expected {size} "
          f"(one chain head per byte)")
    check(from_servers == (r - 1) * size,
          f"chunkservers received {from_servers} bytes from chunkservers, expected "
          f"{r - 1} x {size} (forwarded along the chain)")

    # Pipelining, from the per-data timelines.
    pushes = {}
    for s in servers:
        for e in ranks[s].get("push_timeline", []):
            key = (int(e["origin"]), int(e["data_id"]))
            pushes.setdefault(key, []).append(
                (int(e["first_us"]), int(e["last_us"]), int(e["bytes"]), s))
    check(pushes, "no push_timeline entries on any chunkserver")
    full = {k: v for k, v in pushes.items() if len(v) == r}
    check(all(len(v) <= r for v in pushes.values()),
          "a data id reached more than R chunkservers: "
          + str([(k, len(v)) for k, v in pushes.items() if len(v) > r][:5]))
    check(len(full) == len(pushes),
          f"{len(pushes) - len(full)} of {len(pushes)} pushed data ids did not reach all {r} "
          f"replicas")
    for k, v in full.items():
        if len({b for _, _, b, _ in v}) != 1:
            check(False, f"data id {k}: replicas received different byte counts {v}")
            break
    tl_bytes = sum(v[0][2] for v in full.values())
    check(tl_bytes == size, f"push_timeline bytes over data ids {tl_bytes} != file size {size}")
    pipelined = 0
    overlap_us = []
    for k, v in full.items():
        v = sorted(v)  # by first_us: chain order
        first, last = v[0], v[-1]
        if last[0] < first[1]:
            pipelined += 1
        overlap_us.append(first[1] - last[0])
    print(f"data ids: {len(pushes)}, on all {r} replicas: {len(full)}, pipelined "
          f"(last replica's first slice before the first replica's last slice): {pipelined}")
    if overlap_us:
        overlap_us.sort()
        print(f"overlap first.last_us - last.first_us: median {overlap_us[len(overlap_us) // 2]} us")
    check(pipelined >= 1, "no pushed data id was pipelined along the chain")
    finish("chain")


def cmd_read(d, size, max_lookups, path="any"):
    ranks = load_stats(d)
    by = roles(ranks)
    common_role_checks(ranks, by)
    if failures:
        finish("read")
    master = ranks[0]
    lookups = counter(master, "lookups")
    fbr = counter(master, "file_bytes_received")
    mt = peer_totals(master)
    print(f"master lookups = {lookups} (max {max_lookups}); master wire bytes sent "
          f"{mt['bytes_sent']} recv {mt['bytes_recv']}")
    check(lookups >= 1, "master served no lookups for a read (counter not counted?)")
    check(lookups <= max_lookups, f"master served {lookups} lookups > {max_lookups}")
    check(fbr == 0, f"master file_bytes_received {fbr} != 0")
    limit = max(1 << 20, size // 50)
    check(mt["bytes_sent"] < limit, f"master sent {mt['bytes_sent']} bytes (>= {limit}): file data?")
    crecv = sum(peer_totals(ranks[c])["bytes_recv"] for c in by["client"])
    from_servers = 0
    for c in by["client"]:
        for p, v in ranks[c].get("peers", {}).items():
            if int(p) in by["chunkserver"]:
                from_servers += int(v.get("bytes_recv", 0))
    # Replicas on the client's host are read short-circuit: the chunkserver
    # sends the blocks' checksums (read-local) and the client reads its file.
    def opt(st, name):  # counted only once it happens
        return int(st.get("counters", {}).get(name, 0))
    local = sum(opt(ranks[c], "bytes_read_local") for c in by["client"])
    answers = sum(opt(ranks[s], "local_reads") for s in by["chunkserver"])
    print(f"client bytes received: total {crecv}, from chunkservers {from_servers}; "
          f"read short-circuit {local} (chunkserver read-local answers {answers})")
    check(from_servers + local >= size,
          f"client got {from_servers} bytes from chunkservers + {local} short-circuit < file size {size}")
    check(local == 0 or answers >= 1, "short-circuit bytes without any chunkserver answer")
    if path == "local":  # every replica on the client's host
        check(local >= size, f"only {local} of {size} bytes read short-circuit")
    elif path == "wire":  # --no-short-circuit
        check(local == 0 and answers == 0, f"{local} bytes read short-circuit with it off")
        check(from_servers >= size, f"client got {from_servers} bytes from chunkservers < {size}")
    finish("read")


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def cmd_chunks(data, local, chunk_size, r):
    size = os.path.getsize(local)
    dirs = sorted(glob.glob(os.path.join(data, "chunkserver-*")))
    check(dirs, f"no chunkserver-* directories in {data}")
    replicas = {}  # handle -> [(dir, sha, size)]
    for d in dirs:
        files = sorted(glob.glob(os.path.join(d, "chunks", "*.chunk")))
        print(f"{d}: {len(files)} chunk files")
        for f in files:
            name = os.path.basename(f)[:-len(".chunk")]
            check(len(name) == 16 and all(c in "0123456789abcdefABCDEF" for c in name),
                  f"chunk file name {f} is not <16 hex digits>.chunk")
            replicas.setdefault(name, []).append((d, sha(f), os.path.getsize(f)))
    want = math.ceil(size / chunk_size)
    print(f"distinct chunk handles on disk: {len(replicas)} (expected ceil({size}/{chunk_size}) = {want})")
    check(len(replicas) == want, f"{len(replicas)} distinct chunk handles on disk, expected {want}")
    for h, reps in sorted(replicas.items()):
        ds = [d for d, _, _ in reps]
        check(len(set(ds)) == r, f"chunk {h} on {len(set(ds))} chunkservers {ds}, expected {r}")
        check(len({s for _, s, _ in reps}) == 1, f"chunk {h}: replicas differ: {reps}")
    # The replicas hold exactly the file's bytes: each chunk-size piece of the
    # file matches one chunk (random data makes the pieces distinct).
    pieces = {}
    with open(local, "rb") as f:
        i = 0
        while True:
            b = f.read(chunk_size)
            if not b:
                break
            pieces[hashlib.sha256(b).hexdigest()] = i
            i += 1
    ondisk = {reps[0][1] for reps in replicas.values()}
    missing = [i for s, i in pieces.items() if s not in ondisk]
    check(not missing, f"file pieces (chunk indexes) {missing[:10]} not found byte-for-byte "
                       f"in any chunk file")
    finish("chunks")


def cmd_links(d, size, r, mode, hosts):
    """Pushed bytes per host link, from the receivers' push_bytes_from (who
    sent what to whom) and the ranks' hosts: with the chain, each chain
    crosses each host link once per byte, so no host sends or receives more
    than the file's size and the client's host sends about the file's size;
    with a star push, the client sends each replica its copy (R times)."""
    ranks = load_stats(d)
    by = roles(ranks)
    common_role_checks(ranks, by)
    check(len(hosts) == len(ranks), f"{len(hosts)} hosts given for {len(ranks)} ranks")
    if failures:
        finish("links")
    clients, servers = by["client"], by["chunkserver"]
    # Retries may push some bytes again: a little slack, never R times.
    tol = size // 50 + (2 << 20)
    sent = sum(counter(ranks[c], "push_bytes_sent") for c in clients)
    fwd = {s: int(ranks[s].get("counters", {}).get("push_bytes_forwarded", 0)) for s in servers}
    print(f"{mode}: client push_bytes_sent {sent} ({sent / size:.3f} x size {size}); "
          f"chunkserver push_bytes_forwarded {fwd}")
    out, inn = {}, {}
    for s in servers:
        for src, b in ranks[s].get("push_bytes_from", {}).items():
            src, b = int(src), int(b)
            if hosts[src] != hosts[s]:
                out[hosts[src]] = out.get(hosts[src], 0) + b
                inn[hosts[s]] = inn.get(hosts[s], 0) + b
    for h in sorted(set(hosts)):
        print(f"  host {h}: pushed bytes out {out.get(h, 0)} ({out.get(h, 0) / size:.3f} x), "
              f"in {inn.get(h, 0)} ({inn.get(h, 0) / size:.3f} x)")
    chost = {hosts[c] for c in clients}
    cout = sum(out.get(h, 0) for h in chost)
    if mode == "chain":
        check(size <= sent <= size + tol, f"client pushed {sent} bytes, want ~{size} (1 x)")
        total_fwd = sum(fwd.values())
        check((r - 1) * size <= total_fwd <= (r - 1) * size + tol,
              f"chunkservers forwarded {total_fwd} bytes, want ~{r - 1} x {size}")
        for s, b in fwd.items():
            check(b <= size + tol, f"chunkserver {s} forwarded {b} bytes, more than once per byte")
        for h in sorted(set(hosts)):
            check(out.get(h, 0) <= size + tol and inn.get(h, 0) <= size + tol,
                  f"host {h}'s link carried out {out.get(h, 0)} / in {inn.get(h, 0)} pushed "
                  f"bytes: more than once per byte (size {size})")
        check(size - tol <= cout <= size + tol,
              f"the client's host sent {cout} pushed bytes off the host, want ~{size}")
    elif mode == "star":
        check(r * size <= sent <= r * size + tol, f"client pushed {sent} bytes, want ~{r} x {size}")
        check(sum(fwd.values()) == 0, f"a star push was forwarded: {fwd}")
        # A replica on the client's own host takes its copy without the link.
        check((r - 1) * size - tol <= cout <= r * size + tol,
              f"the client's host sent {cout} pushed bytes off the host, want {r - 1}..{r} x {size}")
    else:
        check(False, f"mode '{mode}': want chain or star")
    finish(f"links ({mode})")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "get":
        cmd_get(args)
    elif cmd == "count":
        cmd_get(args, count=True)
    elif cmd == "chain":
        cmd_chain(args[0], int(args[1]), int(args[2]))
    elif cmd == "read":
        cmd_read(args[0], int(args[1]), int(args[2]), *args[3:4])
    elif cmd == "sum":
        ranks = load_stats(args[0])
        picked = [st for st in ranks.values() if st.get("role") == args[1]]
        check(picked, f"no rank with role '{args[1]}'")
        total = sum(counter(st, args[2]) for st in picked)
        if failures:
            finish("sum")
        print(total)
    elif cmd == "links":
        cmd_links(args[0], int(args[1]), int(args[2]), args[3], args[4:])
    elif cmd == "chunks":
        cmd_chunks(args[0], args[1], int(args[2]), int(args[3]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
