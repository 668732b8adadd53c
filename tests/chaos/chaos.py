#!/usr/bin/env python3
"""The kill-and-verify suite of gfs-mpi: a Jepsen-style checker.

Each iteration starts a fresh data directory, runs the workload (producers
record-appending to one shared file, writers overwriting their own files, all
logging every attempt and acknowledgement) under faults (SIGKILL of a
chunkserver, of the master when the job has two shadows, SIGSTOP/SIGCONT of
a rank, SIGKILL of the whole job), damages chunk, checksum and metadata files
between jobs, then verifies in a fresh job: every acknowledged record present
and intact, duplicates only of records whose append failed, no record across a
chunk end, every fsynced byte as written, no byte that was never written,
every replica at the master's version holding every acknowledged record and
fsynced byte, and `gfs fsck --verify` healthy after repair.

See tests/chaos/README.md. Python 3 standard library only.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--enable-recovery", "-q",
          "--mca", "async_mpi_finalize", "1", "--mca", "rtc_hwloc_vmhole", "none"]
MiB = 1 << 20

FAULT_KINDS = ["kill_cs", "kill_master", "stop_storage", "stop_client", "kill_job",
               "flip", "chunk_cut", "crc_cut", "meta", "oplog"]
# Problems that fail the run (columns of the table).
FAIL_KEYS = ["lost_rec", "lost_bytes", "wrong_bytes", "bad_dups", "across_end", "replica",
             "fsck", "hangs", "crashes", "leftovers", "suite"]


def now():
    return time.monotonic()


# ---------------------------------------------------------------- processes

def proc_stat(pid):
    """(state, session id) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode("latin-1")
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    return rest[0], int(rest[3])


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def session_pids(sid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = proc_stat(int(d))
        if st is not None and st[1] == sid and st[0] not in ("Z", "X"):
            out.append(int(d))
    return out


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    for e in env:
        if e.startswith(b"OMPI_COMM_WORLD_RANK="):
            return int(e.split(b"=", 1)[1])
    return None


def pids_mentioning(needle):
    out = []
    me = os.getpid()
    nb = needle.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if nb in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return [p for p in out if alive(p)]


def signal_all(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


class Job:
    """A command in a session of its own (mpirun and every rank it starts)."""

    def __init__(self, it, name, argv, np_ranks=0):
        self.it = it
        self.name = name
        self.np = np_ranks
        self.out = os.path.join(it.dir, name + ".out")
        self.err = os.path.join(it.dir, name + ".err")
        it.log(f"start {name}: {' '.join(argv)}")
        self.t0 = now()
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                      start_new_session=True, cwd=it.dir)
        self.sid = self.p.pid
        self.ranks = {}      # rank -> pid
        self.killed = set()  # ranks killed on purpose
        self.stopped = set()
        self.whole_killed = False
        self.vanished = {}   # rank -> seconds after start, for ranks that died by themselves
        self.t_end = None

    def running(self):
        return self.p.poll() is None

    def find_ranks(self, timeout):
        """Waits until every rank of the job is visible."""
        until = now() + timeout
        while now() < until:
            for pid in session_pids(self.sid):
                if pid == self.sid or pid in self.ranks.values():
                    continue
                r = rank_of(pid)
                if r is not None:
                    self.ranks[r] = pid
            if len(self.ranks) >= self.np or not self.running():
                break
            time.sleep(0.1)
        return len(self.ranks) >= self.np

    def watch(self, exit_file):
        """Ranks that vanished without their exit file: died by themselves."""
        for r, pid in self.ranks.items():
            if r in self.killed or r in self.vanished or alive(pid):
                continue
            if not os.path.exists(exit_file(r)):
                self.vanished[r] = round(now() - self.t0, 2)
                self.it.log(f"{self.name}: rank {r} (pid {pid}) is gone and wrote no exit file")

    def kill_rank(self, r, sig=signal.SIGKILL):
        pid = self.ranks.get(r)
        if pid is None or not alive(pid):
            return False
        os.kill(pid, sig)
        return True

    def kill_all(self):
        """SIGKILL every process of the session at once (stopped first, so
        none of them sees another die)."""
        pids = session_pids(self.sid)
        signal_all(pids, signal.SIGSTOP)
        signal_all(pids, signal.SIGKILL)
        self.whole_killed = True
        return pids

    def wait(self, timeout):
        """Waits for mpirun; True if it exited in time."""
        try:
            self.p.wait(timeout=max(0.0, timeout))
            self.seconds()
            return True
        except subprocess.TimeoutExpired:
            return False

    def reap(self):
        """Kills whatever is left of the session; returns leftover pids
        (processes still there 10 s after mpirun exited)."""
        if self.running():
            self.kill_all()
            self.p.wait()
        left = []
        until = now() + 10
        while now() < until:
            left = session_pids(self.sid)
            if not left:
                return []
            time.sleep(0.1)
        signal_all(left, signal.SIGKILL)
        return left

    def seconds(self):
        if self.t_end is None and not self.running():
            self.t_end = now()
        return (self.t_end if self.t_end is not None else now()) - self.t0

    def stderr_text(self):
        try:
            with open(self.err, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


CRASH_PATTERNS = [
    re.compile(p) for p in [
        r"AddressSanitizer", r"LeakSanitizer", r"UndefinedBehaviorSanitizer", r"runtime error:",
        r"terminate called", r"Assertion .* failed", r"Segmentation fault", r"core dumped",
        r"stack smashing", r"\] Signal: ", r"Process received signal"]]
SIGNAL_RE = re.compile(r"rank (\d+) with PID (\d+) .*exited on signal (\d+)")


def stderr_crashes(job):
    """Lines of a job's stderr that report a crash (sanitizers, signals other
    than the SIGKILLs the driver sent)."""
    out = []
    for line in job.stderr_text().splitlines():
        m = SIGNAL_RE.search(line)
        if m:
            r, sig = int(m.group(1)), int(m.group(3))
            if sig == signal.SIGKILL and (r in job.killed or job.whole_killed):
                continue
            out.append(line.strip())
            continue
        if any(p.search(line) for p in CRASH_PATTERNS):
            out.append(line.strip())
    return out


# ---------------------------------------------------------------- damage

def chunk_inventory(data):
    """handle -> list of (dir, version or None) from every chunkserver dir."""
    inv = {}
    for d in sorted(os.listdir(data)):
        cdir = os.path.join(data, d, "chunks")
        if not d.startswith("chunkserver-") or not os.path.isdir(cdir):
            continue
        for name in sorted(os.listdir(cdir)):
            if not name.endswith(".meta") or len(name) != 21:
                continue
            h = name[:16]
            ver = None
            try:
                with open(os.path.join(cdir, name), "rb") as f:
                    b = f.read()
                if len(b) == 28 and struct.unpack_from("<I", b, 0)[0] == 0x4D534647:
                    ver = struct.unpack_from("<Q", b, 16)[0]
            except OSError:
                pass
            inv.setdefault(h, []).append((d, ver))
    return inv


def fsize(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def oplog_records(path):
    """(offset, size, seq) of each well-framed record of an op-log file
    (doc/disk-format-master.md: a 40-byte header, then records of a 16-byte
    header crc, len, seq and len payload bytes)."""
    with open(path, "rb") as f:
        b = f.read()
    out, p = [], 40
    while p + 16 <= len(b):
        _, ln, seq = struct.unpack_from("<IIQ", b, p)
        if p + 16 + ln > len(b):
            break
        out.append((p, 16 + ln, seq))
        p += 16 + ln
    return out


def newest_log(data, member):
    """(path, records) of a master-group member's newest op log, or None."""
    mdir = os.path.join(data, member)
    logs = sorted(x for x in os.listdir(mdir) if x.startswith("log-")) if os.path.isdir(mdir) else []
    if not logs:
        return None
    path = os.path.join(mdir, logs[-1])
    return path, oplog_records(path)


def damage(it, rng, n):
    """Damages up to n files between jobs; never more than R - 1 replicas of
    one chunk in the iteration, and only replicas at the newest version on
    disk while another replica at that version stays untouched."""
    data, R = it.data, it.cfg["r"]
    done = []
    for _ in range(n):
        kinds = [("flip", 35), ("chunk_cut", 25), ("crc_cut", 20), ("meta", 15)]
        if it.cfg["shadows"] == 2 and not it.oplog_damaged:
            kinds.append(("oplog", 8))
        kind = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
        pick = rng.random()
        pick2 = rng.random()
        if kind in it.r.skip:
            it.log(f"damage {kind} skipped (--skip)")
            continue
        if kind == "oplog":
            # One member's newest log cut inside its last record, only where
            # another member's log reaches at least as far (its copy of that
            # record is the good one).
            members = ["master"] + [f"shadow-{i}" for i in range(1, 3)]
            logs = {m: newest_log(data, m) for m in members}
            last = {m: (l[1][-1][2] if l and l[1] else -1) for m, l in logs.items()}
            member = members[int(pick * len(members))]
            if last[member] < 0 or not any(last[o] >= last[member] for o in members if o != member):
                it.log(f"damage oplog: {member}'s log is the most advanced copy (or empty), left alone")
                continue
            path, recs = logs[member]
            off, size, seq = recs[-1]
            cut = off + 1 + int(pick2 * (size - 1))
            os.truncate(path, cut)
            it.oplog_damaged = True
            done.append(("oplog", f"{member}/{os.path.basename(path)}: cut at {cut} inside its last record "
                                  f"(seq {seq}, bytes {off}+{size}; last seqs {last})"))
            continue
        inv = chunk_inventory(data)
        candidates = []
        for h in sorted(inv):
            reps = inv[h]
            versions = [v for _, v in reps if v is not None]
            if not versions:
                continue
            top = max(versions)
            current = [d for d, v in reps if v == top]
            sizes = {(fsize(os.path.join(data, d, "chunks", h + ".chunk")),
                      fsize(os.path.join(data, d, "chunks", h + ".crc"))) for d in current}
            if len(sizes) != 1:
                continue  # replicas that differ: which one is good is not clear
            hit = it.damaged.get(h, set())
            untouched = [d for d in current if d not in hit]
            if len(hit) >= R - 1 or len(untouched) < 2:
                continue
            for d in untouched:
                if kind in ("flip", "chunk_cut") and fsize(os.path.join(data, d, "chunks", h + ".chunk")) <= 0:
                    continue
                if kind == "crc_cut" and fsize(os.path.join(data, d, "chunks", h + ".crc")) <= 16:
                    continue
                candidates.append((h, d, top, len(current)))
        if not candidates:
            continue
        h, d, ver, ncur = candidates[int(pick * len(candidates))]
        base = os.path.join(data, d, "chunks", h)
        what = f"{d}/{h} (v{ver}, {ncur} replicas at v{ver})"
        if kind == "flip":
            size = fsize(base + ".chunk")
            off = int(pick2 * size)
            bit = 1 << rng.randrange(8)
            with open(base + ".chunk", "r+b") as f:
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([b[0] ^ bit]))
            detail = f"{what}.chunk: byte {off} ^= 0x{bit:02x}"
        elif kind == "chunk_cut":
            size = fsize(base + ".chunk")
            blocks = (size - 1) // 65536  # whole blocks strictly below the end
            cut = int(pick2 * (blocks + 1)) * 65536
            os.truncate(base + ".chunk", cut)
            detail = f"{what}.chunk: cut from {size} to {cut} bytes"
        elif kind == "crc_cut":
            size = fsize(base + ".crc")
            cut = 16 + int(pick2 * (size - 16))
            os.truncate(base + ".crc", cut)
            detail = f"{what}.crc: cut from {size} to {cut} bytes"
        else:
            with open(base + ".meta", "r+b") as f:
                b = bytearray(f.read())
                off = int(pick2 * len(b))
                b[off] ^= 0x40
                f.seek(0)
                f.write(b)
            detail = f"{what}.meta: byte {off} ^= 0x40"
        it.damaged.setdefault(h, set()).add(d)
        done.append((kind, detail))
    for kind, detail in done:
        it.fault(kind, detail)
    return done


# ---------------------------------------------------------------- iteration

class Iteration:
    def __init__(self, runner, index):
        self.r = runner
        self.index = index
        self.seed = runner.args.seed
        self.rng = random.Random(f"gfs-chaos/{self.seed}/{index}")
        self.dmg_rng = random.Random(f"gfs-chaos-damage/{self.seed}/{index}")
        self.dir = tempfile.mkdtemp(prefix=f"gfs-chaos-{self.seed}-{index}.", dir=runner.args.tmp)
        self.data = os.path.join(self.dir, "data")
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        self.logf = open(os.path.join(self.dir, "driver.log"), "w")
        self.t0 = now()
        self.faults = {k: 0 for k in FAULT_KINDS}
        self.fault_log = []
        self.damaged = {}
        self.oplog_damaged = False
        self.res = {k: 0 for k in FAIL_KEYS}
        self.problems = []
        self.acked = {"records": 0, "record_bytes": 0, "writes": 0, "write_bytes": 0,
                      "fsynced_bytes": 0}
        self.jobs = []
        self.clients = []  # what each client of a workload job that ended said

    def log(self, msg):
        line = f"[{now() - self.t0:7.2f}] {msg}"
        self.logf.write(line + "\n")
        self.logf.flush()
        if self.r.args.verbose:
            print(f"  it{self.index}: {line}", flush=True)

    def fault(self, kind, detail):
        self.faults[kind] += 1
        self.fault_log.append(f"{kind}: {detail}")
        self.log(f"FAULT {kind}: {detail}")

    def problem(self, key, msg, n=1):
        self.res[key] += n
        self.problems.append(f"[{key}] {msg}")
        self.log(f"PROBLEM [{key}] {msg}")

    # -- configuration and plan, all drawn from self.rng in a fixed order
    def plan(self):
        rng, sc = self.rng, self.r.scale
        K = rng.choice([3, 3, 4, 4])
        R = rng.choices([3, 2, 1], weights=[65, 25, 10])[0]
        S = 2 if rng.random() < 0.4 else 0
        chunk = rng.choice([MiB, MiB, MiB, 2 * MiB])
        P = rng.choice([1, 2, 2, 3])
        W = rng.choice([1, 1, 2])
        scrub = rng.choice([32, 0])
        self.cfg = {"cs": K, "r": R, "shadows": S, "chunk": chunk, "hb": 200, "lease": 5,
                    "timeout": 5000, "scrub": scrub, "producers": P, "writers": W}
        self.dur = max(3.0, 10.0 * sc)
        self.load = {"records": max(300, int(5000 * sc)), "min_rec": 1, "max_rec": 4096, "big": 5,
                     "batch": 8, "psync": 40, "files": 2, "fsize": (3 if sc >= 0.5 else 2) * MiB,
                     "wmax": 512 << 10, "wsync": 30, "wrate": 60}
        # Producers spread their budget over 80% of the job.
        self.load["rate"] = max(1, int(self.load["records"] / (0.8 * self.dur)))
        self.job_plans = []
        for j in (1, 2):
            kill_job = rng.random() < 0.4
            events = []
            t_kill = rng.uniform(0.5, self.dur) if kill_job else None
            kills = 0
            master_dead = False
            for _ in range(rng.choice([1, 2, 2, 3])):
                t = rng.uniform(0.3, self.dur - 0.8)
                kinds = [("stop_storage", 30), ("stop_client", 15)]
                if kills < R - 1:
                    kinds.append(("kill_cs", 35))
                if S == 2 and not master_dead:
                    kinds.append(("kill_master", 25))
                kind = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
                x = rng.random()
                d = rng.uniform(0.5, 4.0)
                if kind == "kill_cs":
                    kills += 1
                    events.append((t, kind, 1 + S + int(x * K), 0))
                elif kind == "kill_master":
                    master_dead = True
                    events.append((t, kind, 0, 0))
                elif kind == "stop_storage":
                    events.append((t, kind, int(x * (1 + S + K)), min(d, self.dur - 0.2 - t)))
                else:
                    events.append((t, kind, 1 + S + K + int(x * (P + W)), min(d, self.dur - 0.2 - t)))
            events.sort()
            n_damage = rng.choice([0, 1, 1, 2, 3]) if R > 1 else 0
            self.job_plans.append({"kill_job": t_kill, "events": events, "damage": n_damage})
            if not kill_job or rng.random() < 0.4:
                break  # a second job only after a whole-job kill, and not always
        self.verify_damage = self.job_plans[-1]["damage"]

    def worker_args(self, mode, job, extra):
        c = self.cfg
        kv = {"cs": c["cs"], "r": c["r"], "shadows": c["shadows"], "chunk": c["chunk"],
              "hb": c["hb"], "timeout": c["timeout"], "lease": c["lease"], "scrub": c["scrub"],
              "job": job, "seed": self.seed * 1000 + self.index}
        kv.update(extra)
        np_ranks = 1 + c["shadows"] + c["cs"] + (c["producers"] + c["writers"] if mode == "work" else 1)
        argv = MPIRUN + ["-np", str(np_ranks), self.r.worker, mode, self.data, self.work]
        argv += [f"{k}={v}" for k, v in kv.items()]
        return argv, np_ranks

    def exit_file(self, job):
        return lambda r: os.path.join(self.work, f"exit-j{job}-r{r}.txt")

    def check_job_end(self, job, jn, np_ranks, expect_all):
        """After a job: ranks that died by themselves, crash reports on
        stderr, leftovers."""
        ef = self.exit_file(jn)
        # One crash per rank that died by itself; the stderr lines (signal
        # reports, sanitizers) count only when no rank vanished.
        for line in stderr_crashes(job):
            self.problem("crashes", f"{job.name}: {line}", 0 if job.vanished else 1)
        for r, t in sorted(job.vanished.items()):
            self.problem("crashes", f"{job.name}: rank {r} died by itself {t} s after the start")
        if expect_all:
            for r in range(np_ranks):
                if r in job.killed or r in job.vanished:
                    continue
                if not os.path.exists(ef(r)):
                    self.problem("crashes", f"{job.name}: rank {r} ended without its exit file")
                    continue
                with open(ef(r)) as f:
                    status = f.read().strip()
                if not status.endswith(" OK"):
                    self.log(f"{job.name}: rank {r} exit status: {status}")
                    if r not in job.stopped:
                        self.problems.append(f"[note] {job.name}: rank {r}: {status}")
        left = job.reap()
        if left:
            self.problem("leftovers", f"{job.name}: processes still running after the job: {left}")

    def run_work(self, jn, plan):
        argv, np_ranks = self.worker_args("work", jn, {**self.load, "producers": self.cfg["producers"],
                                                     "writers": self.cfg["writers"]})
        job = Job(self, f"work{jn}", argv, np_ranks)
        self.jobs.append(job)
        ef = self.exit_file(jn)
        if not job.find_ranks(60):
            self.problem("hangs", f"{job.name}: only ranks {sorted(job.ranks)} of {np_ranks} started in 60 s")
        # The clock starts once every client has opened its files.
        first_client = 1 + self.cfg["shadows"] + self.cfg["cs"]
        nclients = self.cfg["producers"] + self.cfg["writers"]
        until = now() + 90
        while now() < until and job.running():
            if all(os.path.exists(os.path.join(self.work, f"started-j{jn}-c{c}")) for c in range(nclients)):
                break
            job.watch(ef)
            time.sleep(0.05)
        else:
            if job.running():
                self.problem("hangs", f"{job.name}: the clients did not start within 90 s")
        t0 = now()
        self.log(f"{job.name}: workload running ({job.seconds():.1f} s after the start)")
        timeline = [(e[0], "event", e) for e in plan["events"]]
        for t, kind, rank, d in plan["events"]:
            if kind.startswith("stop"):
                timeline.append((t + d, "cont", (t, kind, rank, d)))
        killing = plan["kill_job"] is not None and "kill_job" not in self.r.skip
        end = plan["kill_job"] if killing else self.dur
        timeline.append((end, "end", None))
        timeline.sort(key=lambda x: x[0])
        stopped_pids = set()
        for t, what, ev in timeline:
            while now() < t0 + t and job.running():
                job.watch(ef)
                time.sleep(min(0.05, max(0.0, t0 + t - now())))
            if not job.running():
                # Every client gave up (or spent its budget), or a rank died:
                # the exit files and results below tell which.
                self.problems.append(f"[note] {job.name}: mpirun ended by itself {job.seconds():.1f} s "
                                     f"after the start")
                self.log(self.problems[-1])
                break
            job.watch(ef)
            if what == "event":
                _, kind, rank, d = ev
                if kind in self.r.skip:
                    self.log(f"{job.name}: {kind} of rank {rank} skipped (--skip)")
                elif kind in ("kill_cs", "kill_master"):
                    if job.kill_rank(rank):
                        job.killed.add(rank)
                        self.fault(kind, f"{job.name}: SIGKILL rank {rank} at {t:.2f} s")
                    else:
                        self.log(f"{job.name}: rank {rank} not running, {kind} skipped")
                else:
                    if rank in job.killed:
                        continue
                    if job.kill_rank(rank, signal.SIGSTOP):
                        job.stopped.add(rank)
                        stopped_pids.add(job.ranks[rank])
                        self.fault(kind, f"{job.name}: SIGSTOP rank {rank} at {t:.2f} s for {d:.2f} s")
            elif what == "cont":
                _, kind, rank, d = ev
                pid = job.ranks.get(rank)
                if pid in stopped_pids:
                    signal_all([pid], signal.SIGCONT)
                    stopped_pids.discard(pid)
                    self.log(f"{job.name}: SIGCONT rank {rank}")
            else:
                break
        signal_all(stopped_pids, signal.SIGCONT)
        if "kill_job" in self.r.skip and plan["kill_job"] is not None:
            self.log(f"{job.name}: kill_job skipped (--skip); the job ends at {self.dur:.2f} s instead")
        elif plan["kill_job"] is not None and job.running() and now() >= t0 + plan["kill_job"]:
            pids = job.kill_all()
            self.fault("kill_job", f"{job.name}: SIGKILL all {len(pids)} processes at {plan['kill_job']:.2f} s")
            job.wait(30)
            self.check_job_end(job, jn, np_ranks, expect_all=False)
            return
        with open(os.path.join(self.work, f"stop-j{jn}"), "w") as f:
            f.write("stop\n")
        self.log(f"{job.name}: stop file written at {now() - t0:.2f} s")
        grace = self.r.grace
        until = now() + grace
        while now() < until and job.running():
            job.watch(ef)
            time.sleep(0.1)
        if job.running():
            waiting = [r for r, p in sorted(job.ranks.items()) if alive(p)]
            self.problem("hangs", f"{job.name}: still running {grace:.0f} s after the stop file "
                                  f"(ranks alive: {waiting})")
            job.kill_all()
            job.wait(30)
            self.check_job_end(job, jn, np_ranks, expect_all=False)
            return
        self.log(f"{job.name}: ended {job.seconds():.1f} s after its start")
        self.check_job_end(job, jn, np_ranks, expect_all=True)
        nclients = self.cfg["producers"] + self.cfg["writers"]
        for c in range(nclients):
            path = os.path.join(self.work, f"result-j{jn}-c{c}.txt")
            if not os.path.exists(path):
                r = 1 + self.cfg["shadows"] + self.cfg["cs"] + c
                if r not in job.vanished:
                    self.problem("crashes", f"{job.name}: client {c} (rank {r}) wrote no result")
            else:
                with open(path) as f:
                    txt = f.read().strip()
                self.log(f"{job.name}: client {c}: {txt}")
                self.clients.append({"job": jn, "client": c, "result": txt})
                if not txt.startswith("OK"):
                    self.problems.append(f"[note] {job.name}: client {c}: {txt}")

    def run_verify(self):
        jn = 90
        argv, np_ranks = self.worker_args("verify", jn, {"wait": self.r.repair_wait})
        job = Job(self, "verify", argv, np_ranks)
        self.jobs.append(job)
        job.find_ranks(60)
        until = now() + self.r.verify_timeout
        while now() < until and job.running():
            job.watch(self.exit_file(jn))
            time.sleep(0.1)
        if job.running():
            self.problem("hangs", f"verify: still running after {self.r.verify_timeout:.0f} s")
            job.kill_all()
            job.wait(30)
            self.check_job_end(job, jn, np_ranks, expect_all=False)
            return None
        self.check_job_end(job, jn, np_ranks, expect_all=True)
        path = os.path.join(self.work, "verify.json")
        res_path = os.path.join(self.work, f"result-j{jn}-c0.txt")
        if not os.path.exists(path):
            why = open(res_path).read().strip() if os.path.exists(res_path) else "no result"
            self.problem("crashes", f"verify: no verify.json ({why}); stderr: {job.stderr_text()[-500:]}")
            return None
        with open(path) as f:
            return json.load(f)

    def run_fsck(self):
        c = self.cfg
        argv = [self.r.gfs, "--data-dir", self.data, "--chunkservers", str(c["cs"]),
                "--shadows", str(c["shadows"]), "--replication", str(c["r"]),
                "--chunk-size", str(c["chunk"]), "--heartbeat-ms", "200",
                "fsck", "--verify", "--wait", str(self.r.repair_wait // 2), "--json", "/"]
        job = Job(self, "fsck", argv)
        self.jobs.append(job)
        if not job.wait(self.r.verify_timeout):
            self.problem("hangs", f"fsck: still running after {self.r.verify_timeout:.0f} s")
            job.kill_all()
            job.wait(30)
            job.reap()
            return
        rc = job.p.returncode
        for line in stderr_crashes(job):
            self.problem("crashes", f"fsck: {line}")
        left = job.reap()
        if left:
            self.problem("leftovers", f"fsck: processes still running after the job: {left}")
        try:
            with open(job.out) as f:
                rep = json.loads(f.read().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            rep = None
        if rc != 0 or rep is None or rep.get("status") != "healthy":
            status = rep.get("status") if rep else "no JSON"
            bad = []
            if rep:
                for fl in rep.get("files", []):
                    for ch in fl.get("chunk_list", []):
                        if len(ch["replicas"]) < fl["replication"] or ch["corrupt"]:
                            bad.append(f"{fl['path']}#{ch['index']} {ch['handle']} replicas {ch['replicas']} "
                                       f"corrupt {ch['corrupt']}")
            self.problem("fsck", f"fsck --verify in a new job: exit {rc}, status {status}; "
                                 f"{'; '.join(bad[:5])} {job.stderr_text()[-300:].strip()}")

    def run(self):
        self.plan()
        c = self.cfg
        self.log(f"iteration {self.index} seed {self.seed}: config {json.dumps(c)} duration {self.dur:.1f} s "
                 f"plan {json.dumps(self.job_plans)}")
        for jn, plan in enumerate(self.job_plans, start=1):
            self.run_work(jn, plan)
            if plan["damage"]:
                damage(self, self.dmg_rng, plan["damage"])
        v = self.run_verify()
        if v is not None:
            self.absorb(v)
        self.run_fsck()
        left = pids_mentioning(self.dir)
        if left:
            self.problem("leftovers", f"processes of the iteration still running: {left}")
            signal_all(left, signal.SIGKILL)
        self.seconds = now() - self.t0

    def absorb(self, v):
        rec, wr, rep, repl = v["records"], v["writes"], v["repair"], v["replicas"]
        self.verify = v
        self.acked = {"records": rec["acked"], "record_bytes": rec["acked_bytes"], "writes": wr["acked"],
                      "write_bytes": wr["acked_bytes"], "fsynced_bytes": wr["durable_bytes"]}
        probs = v["problems"]
        self.log(f"verify: {v['seconds']:.1f} s (API checks {v['api_seconds']:.1f} s, repair {rep['seconds']:.1f} s); "
                 f"records {json.dumps(rec)}; writes {json.dumps(wr)}; deletes {json.dumps(v.get('deletes'))}; "
                 f"replicas {json.dumps(repl)}")

        def add(key, n, what):
            if n:
                self.res[key] += n
                self.log(f"PROBLEM [{key}] {what}: {n}")

        add("lost_rec", rec["lost"], f"acknowledged records missing ({rec['lost_synced']} fsynced, "
                                     f"{rec['lost_unsynced']} not fsynced)")
        add("lost_bytes", wr["lost_bytes"], "fsynced bytes past the file's length")
        add("wrong_bytes", wr["wrong_bytes"], "wrong bytes in writer files")
        add("wrong_bytes", rec["never_written_bytes"], "bytes of the records file no append wrote")
        add("wrong_bytes", rec["wrong_payload"] + rec["phantom"], "records with wrong payload or never appended")
        add("wrong_bytes", rec["not_at_acked_offset"], "acknowledged records not at their offset")
        add("bad_dups", rec["unexplained_duplicates"], "duplicates of records whose append never failed")
        add("across_end", rec["across_chunk_end"], "records across a chunk end")
        dels = v.get("deletes", {})
        add("wrong_bytes", dels.get("wrong", 0),
            "delete-cycle files not where their last acknowledged rm/undelete left them")
        add("replica", repl["bad_records"] + repl["bad_bytes"] + repl["listed_missing"],
            "replica problems (records, bytes, listed replicas missing)")
        # Unreadable bytes of the records file show up as lost records;
        # those of writer files count whole (fsynced or not, a read must not
        # fail), their fsynced part named in the log.
        add("lost_bytes", wr["unreadable_bytes"],
            f"unreadable bytes in writer files ({wr['unreadable_durable_bytes']} of them fsynced)")
        if not rep["healthy"]:
            self.res["fsck"] += 1
        self.problems.extend(probs)
        for p in probs:
            self.log(f"  verify: {p}")

    def failed(self):
        return any(self.res[k] for k in FAIL_KEYS)

    def repro(self):
        a = self.r.args
        return (f"python3 {os.path.abspath(__file__)} --build {a.build} --seed {self.seed} --start {self.index} "
                f"--iterations 1 --scale {self.r.scale:g} --keep" + (f" --skip {a.skip}" if a.skip else ""))

    def summary(self):
        c = self.cfg
        return {
            "iteration": self.index, "seed": self.seed, "seconds": round(self.seconds, 1),
            "config": c, "jobs": len(self.job_plans), "faults": dict(self.faults),
            "fault_log": self.fault_log, "acked": self.acked, "result": dict(self.res),
            "problems": self.problems[:80], "clients": self.clients,
            "job_seconds": {j.name: round(j.seconds(), 1) for j in self.jobs},
            "dir": self.dir, "repro": self.repro(),
        }


# ---------------------------------------------------------------- self-test

def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC32C_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def tamper_replica(it, d, h):
    """Changes 16 bytes of block 0 of one replica and stores the block's new
    CRC32C, so no checksum catches it: only comparing replicas with what was
    acknowledged does."""
    base = os.path.join(it.data, d, "chunks", h)
    with open(base + ".chunk", "r+b") as f:
        block = bytearray(f.read(65536))
        block[100:116] = b"\xab" * 16
        f.seek(0)
        f.write(block)
    with open(base + ".crc", "r+b") as f:
        f.seek(16)
        f.write(struct.pack("<I", crc32c(block)))
    it.log(f"selftest: {d}/{h}: bytes 100..116 set to 0xab with a matching checksum")


def selftest(runner):
    """One clean iteration with what every detector must find injected; 0 if
    every detector fired."""
    assert crc32c(b"123456789") == 0xE3069283
    it = Iteration(runner, 0)
    it.plan()
    it.cfg.update({"cs": 3, "r": 3, "shadows": 0, "chunk": MiB, "producers": 2, "writers": 1, "scrub": 0})
    it.job_plans = [{"kill_job": None, "events": [], "damage": 0}]
    it.load["inject"] = 1
    print(f"chaos selftest in {it.dir}", flush=True)
    it.run_work(1, it.job_plans[0])
    inv = chunk_inventory(it.data)
    hs = [h for h in sorted(inv) if fsize(os.path.join(it.data, "chunkserver-0", "chunks", h + ".chunk")) >= 65536]
    for h in hs[:3]:
        tamper_replica(it, "chunkserver-0", h)
    v = it.run_verify()
    it.logf.close()
    if v is None:
        print("FAIL: no verify result; see", it.dir)
        return 1
    rec, wr, repl = v["records"], v["writes"], v["replicas"]
    checks = [
        ("unexplained duplicate found", rec["unexplained_duplicates"] >= 1),
        ("never-appended record found", rec["phantom"] >= 1),
        ("bytes no append wrote found", rec["never_written_bytes"] >= 60),
        ("record across a chunk end found", rec["across_chunk_end"] >= 1),
        ("unlogged bytes in a writer file found", wr["wrong_bytes"] >= 100),
        ("tampered replica found", repl["bad_records"] + repl["bad_bytes"] >= 1),
        ("an rm logged but never done found", v.get("deletes", {}).get("wrong", 0) >= 1),
        ("workload acknowledged records and writes", rec["acked"] > 0 and wr["acked"] > 0),
    ]
    bad = 0
    for what, ok in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        bad += 0 if ok else 1
    for p in v["problems"][:8]:
        print(f"       {p[:200]}")
    if bad == 0:
        shutil.rmtree(it.dir, ignore_errors=True)
    else:
        print("kept", it.dir)
    return 1 if bad else 0


# ---------------------------------------------------------------- runner

def short_faults(f):
    names = {"kill_cs": "kcs", "kill_master": "km", "stop_storage": "st", "stop_client": "sc",
             "kill_job": "kj", "flip": "flip", "chunk_cut": "ccut", "crc_cut": "crc", "meta": "meta",
             "oplog": "olog"}
    return " ".join(f"{names[k]}{v}" for k, v in f.items() if v) or "-"


def human(n):
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024.0
    return str(n)


class Runner:
    def __init__(self, args):
        self.args = args
        env_scale = os.environ.get("GFS_TEST_SCALE")
        self.scale = args.scale if args.scale is not None else float(env_scale or 1)
        build = os.path.abspath(args.build)
        self.worker = args.worker or os.path.join(build, "tests", "chaos", "chaos_worker")
        self.gfs = args.gfs or os.environ.get("GFS_BIN") or os.path.join(build, "gfs")
        for p in (self.worker, self.gfs):
            if not os.access(p, os.X_OK):
                sys.exit(f"chaos: {p} is not an executable (build first, or pass --worker/--gfs)")
        self.grace = args.grace
        self.repair_wait = args.repair_wait
        self.verify_timeout = args.verify_timeout
        self.skip = set(x for x in (args.skip or "").split(",") if x)
        unknown = self.skip - set(FAULT_KINDS)
        if unknown:
            sys.exit(f"chaos: --skip: unknown fault kinds {sorted(unknown)} (known: {', '.join(FAULT_KINDS)})")

    def row(self, it):
        s, c, r, a = it.summary(), it.cfg, it.res, it.acked
        conf = f"K{c['cs']} R{c['r']} S{c['shadows']} {c['chunk'] // 1024}K P{c['producers']}W{c['writers']} j{len(it.job_plans)}"
        return (f"{it.index:>4} {conf:<24} {short_faults(it.faults):<28} {a['records']:>7} "
                f"{human(a['record_bytes'] + a['fsynced_bytes']):>7} {r['lost_rec']:>5} {r['lost_bytes']:>7} "
                f"{r['wrong_bytes']:>7} {r['bad_dups']:>4} {r['across_end']:>4} {r['replica']:>5} "
                f"{r['fsck']:>4} {r['hangs']:>4} {r['crashes']:>5} {r['leftovers'] + r['suite']:>4} "
                f"{s['seconds']:>6.1f}")

    HEADER = (f"{'iter':>4} {'config':<24} {'faults':<28} {'ackrec':>7} {'ackB':>7} {'lost':>5} "
              f"{'lostB':>7} {'wrongB':>7} {'dup':>4} {'xend':>4} {'repl':>5} {'fsck':>4} {'hang':>4} "
              f"{'crash':>5} {'left':>4} {'sec':>6}")

    def run(self):
        a = self.args
        t0 = now()
        its = []
        print(f"chaos: seed {a.seed}, iterations {a.start}..{a.start + a.iterations - 1}, scale {self.scale:g}, "
              f"worker {self.worker}", flush=True)
        print(self.HEADER, flush=True)
        for i in range(a.start, a.start + a.iterations):
            if a.time_budget and its:
                per = (now() - t0) / len(its)
                if now() - t0 + per > a.time_budget:
                    print(f"chaos: time budget of {a.time_budget} s reached after {len(its)} iterations", flush=True)
                    break
            it = Iteration(self, i)
            try:
                it.run()
            except KeyboardInterrupt:
                for job in it.jobs:
                    if job.running():
                        job.kill_all()
                    job.reap()
                raise
            except Exception as e:  # a bug of the suite: report it, clean up, go on
                import traceback
                it.problem("suite", f"driver error: {e!r}")
                it.log(traceback.format_exc())
                for job in it.jobs:
                    if job.running():
                        job.kill_all()
                    job.reap()
                it.seconds = now() - it.t0
            it.logf.close()
            its.append(it)
            print(self.row(it), flush=True)
            if it.failed():
                for p in it.problems[:12]:
                    print(f"       {p[:300]}", flush=True)
                if len(it.problems) > 12:
                    print(f"       ... {len(it.problems) - 12} more in {it.dir}/driver.log", flush=True)
                print(f"       reproduce: {it.repro()}", flush=True)
            if it.failed() and a.keep:
                print(f"       kept {it.dir}", flush=True)
            elif not a.keep_all:
                shutil.rmtree(it.dir, ignore_errors=True)
        self.report(its, now() - t0)
        return 1 if any(it.failed() for it in its) or not its else 0

    def report(self, its, secs):
        a = self.args
        tot = {k: sum(it.res[k] for it in its) for k in FAIL_KEYS}
        faults = {k: sum(it.faults[k] for it in its) for k in FAULT_KINDS}
        acked = {k: sum(it.acked[k] for it in its) for k in its[0].acked} if its else {}
        failed = [it.index for it in its if it.failed()]
        print()
        print("=" * 72)
        rows = [
            ("iterations", f"{len(its)} (seed {a.seed}, scale {self.scale:g}), {secs:.0f} s, "
                           f"{secs / max(1, len(its)):.1f} s per iteration"),
            ("faults by kind", ", ".join(f"{k} {v}" for k, v in faults.items())),
            ("acknowledged records", f"{acked.get('records', 0)} ({human(acked.get('record_bytes', 0))} payload)"),
            ("acknowledged writes", f"{acked.get('writes', 0)} ({human(acked.get('write_bytes', 0))}); "
                                    f"fsynced bytes at the end {human(acked.get('fsynced_bytes', 0))}"),
            ("lost records", tot["lost_rec"]),
            ("lost/unreadable bytes", tot["lost_bytes"]),
            ("wrong bytes", tot["wrong_bytes"]),
            ("unexplained duplicates", tot["bad_dups"]),
            ("records across a chunk end", tot["across_end"]),
            ("replica problems", tot["replica"]),
            ("fsck not healthy", tot["fsck"]),
            ("hangs", tot["hangs"]),
            ("crashes", tot["crashes"]),
            ("leftover processes", tot["leftovers"]),
            ("suite errors", tot["suite"]),
            ("failed iterations", ", ".join(map(str, failed)) or "none"),
        ]
        for k, v in rows:
            print(f"{k:<28} {v}")
        print("=" * 72)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"seed": a.seed, "scale": self.scale, "seconds": round(secs, 1), "totals": tot,
                           "faults": faults, "acked": acked,
                           "iterations": [it.summary() for it in its]}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(
        description="Kill-and-verify (Jepsen-style) suite for gfs-mpi: workload jobs under SIGKILL/SIGSTOP "
                    "faults and file damage between jobs, then a verifying job (tests/chaos/README.md). "
                    "Exits 1 on any lost or wrong data, hang, crash or leftover process.")
    ap.add_argument("--build", default="build", help="build directory (default: build)")
    ap.add_argument("--worker", help="chaos_worker binary (default: BUILD/tests/chaos/chaos_worker)")
    ap.add_argument("--gfs", help="gfs launcher (default: $GFS_BIN or BUILD/gfs)")
    ap.add_argument("--iterations", type=int, default=10, help="iterations to run (default 10)")
    ap.add_argument("--seed", type=int, default=1, help="seed: iteration I of seed S always makes the same choices")
    ap.add_argument("--start", type=int, default=1, help="first iteration number (to rerun one: --start I --iterations 1)")
    ap.add_argument("--scale", type=float, default=None,
                    help="size/duration scale (default $GFS_TEST_SCALE or 1; CI uses 0.25)")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="start no iteration that would likely end after this many seconds (0: no limit)")
    ap.add_argument("--grace", type=float, default=60, help="seconds a workload job may take to end after its stop file")
    ap.add_argument("--repair-wait", type=int, default=30, help="seconds the verifier waits for re-replication")
    ap.add_argument("--verify-timeout", type=float, default=180, help="seconds before a verify or fsck job is a hang")
    ap.add_argument("--skip", help="fault kinds to leave out, comma-separated (" + ",".join(FAULT_KINDS) +
                    "); the plan is drawn as without it, so iteration I still makes its other choices")
    ap.add_argument("--tmp", default=os.environ.get("GFS_TEST_TMPDIR", "/tmp"), help="where iteration dirs go")
    ap.add_argument("--keep", action="store_true", help="keep the directory of a failing iteration")
    ap.add_argument("--keep-all", action="store_true", help="keep every iteration's directory")
    ap.add_argument("--json", help="write the per-iteration results to this file")
    ap.add_argument("--selftest", action="store_true",
                    help="check the checker: one clean job with a duplicate, a never-appended record, garbage, "
                         "a record across a chunk end, unlogged bytes and a replica changed under a matching "
                         "checksum injected; every detector must fire")
    ap.add_argument("--verbose", "-v", action="store_true", help="print the driver's log as it goes")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    runner = Runner(args)
    sys.exit(selftest(runner) if args.selftest else runner.run())


if __name__ == "__main__":
    main()
