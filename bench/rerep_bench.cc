// The job side of bench/rereplication.sh: time from a chunkserver kill to full
// replication. An MPI program hosting the store (like tests/programs/
// fault_client.cc, whose `put` mode it grew from); its first client
//
//   1. writes bytes=N pseudo-random bytes to /big in 8 MiB calls and closes it
//      (fsync on every replica), then waits until every chunk has R good
//      replicas and no write lease can still be live (lease + 1 s), so that
//      re-replication is not held back by a lease when the kill comes;
//   2. writes WORK_DIR/ready with the replica map ("RANK CHUNKS BYTES DIR" per
//      chunkserver, DIR its directory under DATA_DIR) and waits for WORK_DIR/killed ("RANK
//      KILL_NS"), which the script writes right after it SIGKILLed that chunkserver rank;
//   3. polls Fsck every poll_ms: the first poll that shows a chunk short of R
//      replicas is the detection (the master declared the server dead), the
//      first poll after it with every chunk at R is full replication; each
//      poll's count of short chunks goes to WORK_DIR/timeline ("NS SHORT");
//   4. (verify=1) reads /big back and compares every byte.
//
//   mpirun -np 1+K+1 gfs-rerep-bench DATA_DIR WORK_DIR [key=value...]
//
// Keys: cs (chunkservers, 4), r (replication, 3), chunk (bytes, 64 MiB), hb
// (heartbeat ms), timeout (request ms), lease (s), scrub (MiB/s, 0), bytes,
// seed, poll_ms (50), wait (s to wait for the kill and for the repair, 600),
// verify (1), stats (a stats directory: every rank writes its counters).
// Event times are CLOCK_REALTIME nanoseconds, comparable with the script's
// `date +%s%N` at the kill. Writes "OK key=value..." or "FAIL reason" to
// WORK_DIR/result (mpirun's exit status says nothing under --enable-recovery).
#include <mpi.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench/stream.h"
#include "jobs/gfs.h"

namespace {

using gfs::stream::Args;
using gfs::stream::Fill;
using gfs::stream::Num;
using gfs::stream::WriteText;

uint64_t WallNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void Sleep(uint64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Chunks short of their file's replication (0 = fully replicated); *lost
// counts those with no good replica at all.
gfs::Result<int> ShortChunks(gfs::Client* c, int* lost) {
  auto r = c->Fsck("/", false);
  if (!r.ok()) return r.status();
  int short_of = 0;
  *lost = 0;
  for (const gfs::FsckFile& f : r->files) {
    for (const gfs::FsckChunk& ch : f.chunks) {
      if (ch.replicas.size() < f.replication) ++short_of;
      if (ch.replicas.empty()) ++*lost;
    }
  }
  return short_of;
}

std::string Verify(gfs::Client* c, uint64_t bytes, uint64_t seed) {
  auto f = c->Open("/big");
  if (!f.ok()) return "open: " + f.status().ToString();
  if (f->length != bytes) return "/big is " + std::to_string(f->length) + " bytes";
  const size_t step = 8u << 20;
  std::vector<uint8_t> got(step), want(step);
  for (uint64_t off = 0; off < bytes; off += step) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(step, bytes - off));
    auto r = c->Read(&*f, off, got.data(), n);
    if (!r.ok()) return "read at " + std::to_string(off) + ": " + r.status().ToString();
    if (*r != n) return "short read at " + std::to_string(off);
    Fill(seed, off, want.data(), n);
    if (std::memcmp(got.data(), want.data(), n) != 0) {
      return "wrong bytes in [" + std::to_string(off) + ", " + std::to_string(off + n) + ")";
    }
  }
  return "";
}

std::string Run(gfs::Client* c, const Args& a, const std::string& work, std::string* info) {
  const uint64_t bytes = Num(a, "bytes", 64u << 20), seed = Num(a, "seed", 1);
  const uint64_t poll_ms = Num(a, "poll_ms", 50), wait_s = Num(a, "wait", 600);
  const auto t0 = std::chrono::steady_clock::now();
  std::string bad = gfs::stream::PutStream(c, "/big", bytes, seed);
  if (!bad.empty()) return "put: " + bad;
  const double put_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Fully replicated, and every lease granted for the put has run out.
  const uint64_t settle_until = WallNs() + (Num(a, "lease", 60) + 1) * 1000000000ull;
  int lost = 0;
  for (;;) {
    auto n = ShortChunks(c, &lost);
    if (!n.ok()) return "fsck: " + n.status().ToString();
    if (*n == 0 && WallNs() >= settle_until) break;
    if (WallNs() > settle_until + wait_s * 1000000000ull) return "never fully replicated";
    Sleep(100);
  }

  // Who holds what, for the script's choice of victim and for the bytes that
  // must be re-created once it is gone.
  auto fr = c->Fsck("/", false);
  if (!fr.ok()) return "fsck: " + fr.status().ToString();
  std::map<int32_t, std::pair<uint64_t, uint64_t>> held;  // rank -> chunks, bytes
  for (const gfs::FsckFile& f : fr->files) {
    const uint64_t cs = Num(a, "chunk", 64u << 20);
    for (const gfs::FsckChunk& ch : f.chunks) {
      const uint64_t start = uint64_t{ch.index} * cs;
      const uint64_t len = f.length > start ? std::min(cs, f.length - start) : 0;
      for (int32_t r : ch.replicas) {
        held[r].first++;
        held[r].second += len;
      }
    }
  }
  auto rep = c->Report();
  if (!rep.ok()) return "report: " + rep.status().ToString();
  std::string ready;
  for (const gfs::ServerReport& sv : rep->servers) {
    ready += std::to_string(sv.rank) + " " + std::to_string(held[sv.rank].first) + " " +
             std::to_string(held[sv.rank].second) + " " + sv.dir_name + "\n";
  }
  WriteText(work + "/ready", ready);

  // The script kills a chunkserver and then says which and when.
  int32_t victim = -1;
  uint64_t kill_ns = 0;
  const uint64_t give_up = WallNs() + wait_s * 1000000000ull;
  while (victim < 0) {
    std::ifstream in(work + "/killed");
    if (!(in >> victim >> kill_ns)) {
      victim = -1;
      if (WallNs() > give_up) return "nobody killed a chunkserver";
      Sleep(10);
    }
  }

  FILE* tl = std::fopen((work + "/timeline").c_str(), "w");
  if (tl == nullptr) return "cannot open the timeline file";
  uint64_t detect_ns = 0, first_repair_ns = 0, full_ns = 0;
  int most_short = 0, last_short = -1;
  const uint64_t repair_until = WallNs() + wait_s * 1000000000ull;
  while (full_ns == 0) {
    auto n = ShortChunks(c, &lost);
    const uint64_t now = WallNs();
    if (!n.ok()) {
      std::fclose(tl);
      return "fsck: " + n.status().ToString();
    }
    if (*n != last_short) std::fprintf(tl, "%" PRIu64 " %d\n", now, *n);
    last_short = *n;
    if (lost > 0) {
      std::fclose(tl);
      return std::to_string(lost) + " chunks lost every replica";
    }
    if (detect_ns == 0 && *n > 0) detect_ns = now;
    most_short = std::max(most_short, *n);
    if (detect_ns != 0 && first_repair_ns == 0 && *n < most_short) first_repair_ns = now;
    if (detect_ns != 0 && *n == 0) full_ns = now;
    if (now > repair_until) {
      std::fclose(tl);
      return detect_ns == 0 ? "the master never noticed the kill"
                            : std::to_string(*n) + " chunks still short after the wait";
    }
    if (full_ns == 0) Sleep(poll_ms);
  }
  std::fclose(tl);
  if (first_repair_ns == 0) first_repair_ns = full_ns;

  if (Num(a, "verify", 1) != 0) {
    bad = Verify(c, bytes, seed);
    if (!bad.empty()) return "read back after re-replication: " + bad;
  }
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "put_s=%.3f victim=%d victim_chunks=%" PRIu64 " victim_bytes=%" PRIu64
                " short_chunks=%d kill_ns=%" PRIu64 " detect_ns=%" PRIu64
                " first_repair_ns=%" PRIu64 " full_ns=%" PRIu64,
                put_s, victim, held[victim].first, held[victim].second, most_short, kill_ns,
                detect_ns, first_repair_ns, full_ns);
  *info = buf;
  return "";
}

}  // namespace

#ifndef GFS_VERSION
#define GFS_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--version") {
    std::printf("gfs-rerep-bench %s\n", GFS_VERSION);
    return 0;
  }
  MPI_Init(&argc, &argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: gfs-rerep-bench DATA_DIR WORK_DIR [key=value...]\n");
    MPI_Finalize();
    return 2;
  }
  const std::string work = argv[2];
  const Args a = gfs::stream::ParseArgs(argc, argv, 3);
  gfs::JobConfig cfg;
  cfg.data_dir = argv[1];
  cfg.chunkservers = static_cast<int>(Num(a, "cs", 4));
  cfg.replication = static_cast<uint32_t>(Num(a, "r", 3));
  cfg.chunk_size = Num(a, "chunk", 64u << 20);
  cfg.heartbeat_ms = static_cast<uint32_t>(Num(a, "hb", 100));
  cfg.request_timeout_ms = static_cast<uint32_t>(Num(a, "timeout", 2000));
  cfg.lease_seconds = static_cast<uint32_t>(Num(a, "lease", 2));
  // Scrubbing would read replicas beside the clones: off unless asked for.
  cfg.scrub_mb_per_s = static_cast<uint32_t>(Num(a, "scrub", 0));
  if (a.count("stats")) cfg.stats_dir = a.at("stats");
  gfs::Session s;
  gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  std::string bad, info;
  const bool first_client = st.ok() && s.is_client() && s.client_index() == 0;
  if (!st.ok()) {
    bad = "init: " + st.ToString();
  } else if (first_client) {
    bad = Run(s.client(), a, work, &info);
  }
  if (!st.ok() || first_client) {
    WriteText(work + "/result", bad.empty() ? "OK " + info : "FAIL " + bad);
  }
  if (gfs::Status fin = gfs::Finalize(&s, bad.empty() ? 0 : 1); !fin.ok()) {
    std::fprintf(stderr, "finalize: %s\n", fin.ToString().c_str());
  }
  MPI_Finalize();
  return bad.empty() ? 0 : 1;
}
