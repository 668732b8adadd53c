// The client side of the fault-injection tests (tests/mpi/test_fault_*.sh):
// a user MPI program hosting the store with gfs::Init, whose first client
// does one of these while the test script kills ranks around it.
//
//   mpirun -np N fault_client MODE DATA_DIR WORK_DIR [key=value...]
//
// Keys (job settings): cs (chunkservers), r (replication), chunk (bytes),
// hb (heartbeat ms), timeout (request ms), lease (seconds), scrub (MiB/s),
// shadows (shadow master ranks), stats (a --stats-dir for per-rank counters),
// wait (seconds to wait for full replication, default 120).
//
// put    bytes=N seed=S [local=L]: writes N pseudo-random bytes to /big in 8 MiB calls,
//        putting the bytes done so far in WORK_DIR/progress after each (the
//        script kills a chunkserver when it reaches its kill point); closes,
//        reads everything back, waits until every chunk has R good replicas
//        again, reads it back once more. L gets a copy of the bytes.
// crash  seed=S: an endless stream of mkdir, create, write + fsync, rename and
//        remove. Each operation is logged to WORK_DIR/ops.log as "B ..."
//        before it starts and "A" once it is acknowledged (flushed at once):
//        the script SIGKILLs the whole job at a random moment.
// check  : a later job on the same data: every acknowledged operation of
//        ops.log is there (every fsynced byte, every rename and removal),
//        allowing either outcome only for the one operation in flight at the
//        kill; then every chunk must have R good replicas.
// scrub  path=P local=L [replica=FILE index=K]: waits until a replica of P is
//        reported corrupt, or FILE (the damaged replica of chunk K) holds the
//        right bytes again (nobody reads P: the chunkservers' scrubbers must
//        find it), and then
//        until every chunk of P has R good replicas again; then P must read
//        back as the local file L.
// failover bytes=N seed=S [local=L]: the put above while the script SIGKILLs
//        (or SIGSTOPs) the master rank; after the put, once WORK_DIR/killed
//        exists (the master is gone), more data and metadata under whichever
//        master there is then: mkdir /after, /after/small written (1 MiB + 17
//        bytes) and renamed to /after/moved, mkdir /after/d; everything is
//        read back and listed, then re-replication is waited for as in put.
//        pause_at=P (put and failover): after the write that reaches P
//        bytes, writes WORK_DIR/paused and waits for WORK_DIR/go.
// verify bytes=N seed=S: a later job after failover: /big, /after/moved and
//        /after as written, then every chunk with R good replicas.
// reads  : creates /r/f (65536 + 5 bytes) and /r/g, writes WORK_DIR/ready,
//        then stats /r/f and lists /r in a loop until WORK_DIR/done exists
//        (the script stops and resumes the master meanwhile), putting the
//        number of answered calls in WORK_DIR/progress after each; every
//        answer must be right.
// blocks path=P local=L: reads P one 64 KiB block at a time (whole-file
//        offsets) and writes WORK_DIR/blocks, one line per block:
//        "OFFSET ok" (the bytes equal L's), "OFFSET err MESSAGE" (the read
//        failed), or "OFFSET wrong" (the read returned other bytes: never
//        allowed); OK when no block is wrong, "unreadable=N" in the result.
// Writes "OK ..." or "FAIL reason" to WORK_DIR/result (mpirun's exit status
// says nothing under --enable-recovery).
#include <mpi.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
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

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Waits until every chunk under `path` has R good replicas. *lost counts
// chunks that had none at the last look.
gfs::Status WaitReplicated(gfs::Client* c, const std::string& path, double seconds,
                           std::string* why) {
  const double until = Now() + seconds;
  for (;;) {
    auto r = c->Fsck(path, false);
    if (!r.ok()) return r.status();
    int short_of = 0, lost = 0;
    for (const gfs::FsckFile& f : r->files) {
      for (const gfs::FsckChunk& ch : f.chunks) {
        if (ch.replicas.size() < f.replication) ++short_of;
        if (ch.replicas.empty()) {
          ++lost;
          *why = f.path + " chunk " + std::to_string(ch.index) + " has no good replica";
        }
      }
    }
    if (short_of == 0) return gfs::Status::OK();
    if (Now() > until) {
      if (lost == 0) *why = std::to_string(short_of) + " chunks under-replicated";
      return gfs::Status::Timeout(*why);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// Reads all of `path` and compares it with `want`.
std::string CompareFile(gfs::Client* c, const std::string& path, const std::vector<uint8_t>& want) {
  auto f = c->Open(path);
  if (!f.ok()) return "open " + path + ": " + f.status().ToString();
  if (f->length != want.size()) {
    return path + " is " + std::to_string(f->length) + " bytes, want " +
           std::to_string(want.size());
  }
  std::vector<uint8_t> got(8u << 20);
  for (uint64_t off = 0; off < want.size();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(got.size(), want.size() - off));
    auto r = c->Read(&*f, off, got.data(), n);
    if (!r.ok())
      return "read " + path + " at " + std::to_string(off) + ": " + r.status().ToString();
    if (*r != n) return "short read of " + path + " at " + std::to_string(off);
    if (std::memcmp(got.data(), want.data() + off, n) != 0) {
      size_t i = 0;
      while (got[i] == want[off + i]) ++i;
      return path + ": wrong byte at " + std::to_string(off + i);
    }
    off += n;
  }
  return "";
}

// ---- put ----

// Waits (sleeping) until `path` exists; false after `seconds`.
bool WaitForFile(const std::string& path, double seconds) {
  const double until = Now() + seconds;
  while (!std::ifstream(path).good()) {
    if (Now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// `after` runs once the put is closed and read back (the fail-over mode's
// second phase); an error from it fails the run.
std::string RunPut(gfs::Client* c, const Args& a, const std::string& work, std::string* info,
                   const std::function<std::string()>& after = nullptr) {
  const uint64_t bytes = Num(a, "bytes", 64u << 20), seed = Num(a, "seed", 1);
  std::vector<uint8_t> data(bytes);
  Fill(seed, 0, data.data(), data.size());
  if (a.count("local")) {  // the same bytes, for the script's later checks
    std::ofstream out(a.at("local"), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(bytes));
  }
  double t0 = Now();
  std::string bad =
      gfs::stream::PutStream(c, "/big", bytes, seed, [&](uint64_t off, uint64_t n) -> std::string {
        WriteText(work + "/progress", std::to_string(off + n));
        const uint64_t pause_at = Num(a, "pause_at", 0);
        if (a.count("pause_at") && off < pause_at && off + n >= pause_at) {
          // The kill point: the file is open, more writes to come.
          WriteText(work + "/paused", std::to_string(off + n));
          if (!WaitForFile(work + "/go", 120)) return "the script never said go";
        }
        return "";
      });
  if (!bad.empty()) return bad;
  double t1 = Now();
  bad = CompareFile(c, "/big", data);
  if (!bad.empty()) return "read back after the put: " + bad;
  if (after) {
    bad = after();
    if (!bad.empty()) return bad;
  }
  double t2 = Now();
  std::string why;
  gfs::Status s = WaitReplicated(c, "/", static_cast<double>(Num(a, "wait", 120)), &why);
  if (!s.ok()) return "full replication: " + s.ToString();
  double t3 = Now();
  bad = CompareFile(c, "/big", data);
  if (!bad.empty()) return "read back after re-replication: " + bad;
  char buf[160];
  std::snprintf(buf, sizeof buf, "put_s=%.2f get_s=%.2f repl_s=%.2f", t1 - t0, t2 - t1, t3 - t2);
  *info = buf;
  return "";
}

// ---- failover ----

// The second phase of the fail-over mode: mutations that only a new master
// can acknowledge, then everything read back.
std::string AfterFailover(gfs::Client* c, const Args& a, const std::string& work) {
  if (!WaitForFile(work + "/killed", 120)) return "the script never killed the master";
  if (gfs::Status s = c->Mkdir("/after", false); !s.ok()) return "mkdir /after: " + s.ToString();
  std::vector<uint8_t> small((1u << 20) + 17);
  Fill(Num(a, "seed", 1) + 1000, 0, small.data(), small.size());
  auto f = c->Create("/after/small");
  if (!f.ok()) return "create /after/small: " + f.status().ToString();
  gfs::Status s = c->Write(&*f, 0, small.data(), small.size());
  if (s.ok()) s = c->Close(&*f);
  if (!s.ok()) return "write /after/small: " + s.ToString();
  s = c->Rename("/after/small", "/after/moved");
  if (!s.ok()) return "rename /after/small: " + s.ToString();
  s = c->Mkdir("/after/d", false);
  if (!s.ok()) return "mkdir /after/d: " + s.ToString();
  std::string bad = CompareFile(c, "/after/moved", small);
  if (!bad.empty()) return bad;
  auto l = c->List("/after");
  if (!l.ok()) return "list /after: " + l.status().ToString();
  std::set<std::string> names;
  for (const gfs::FileStat& e : *l) names.insert(e.path);
  if (names != std::set<std::string>{"d", "moved"}) {
    std::string got;
    for (const std::string& n : names) got += " " + n;
    return "list /after:" + got + " (want d moved)";
  }
  return "";
}

// ---- verify ----

// A later job after a fail-over run: /big and /after are as written, and
// every chunk has R good replicas (fsck healthy).
std::string RunVerify(gfs::Client* c, const Args& a, std::string* info) {
  const uint64_t bytes = Num(a, "bytes", 64u << 20), seed = Num(a, "seed", 1);
  std::vector<uint8_t> want(bytes);
  Fill(seed, 0, want.data(), want.size());
  std::string bad = CompareFile(c, "/big", want);
  if (!bad.empty()) return bad;
  want.assign((1u << 20) + 17, 0);
  Fill(seed + 1000, 0, want.data(), want.size());
  bad = CompareFile(c, "/after/moved", want);
  if (!bad.empty()) return bad;
  auto l = c->List("/after");
  if (!l.ok()) return "list /after: " + l.status().ToString();
  if (l->size() != 2) return "list /after: " + std::to_string(l->size()) + " entries, want 2";
  std::string why;
  gfs::Status s = WaitReplicated(c, "/", static_cast<double>(Num(a, "wait", 60)), &why);
  if (!s.ok()) return "fsck: " + s.ToString();
  *info = "healthy";
  return "";
}

// ---- reads ----

std::string RunReads(gfs::Client* c, const std::string& work, std::string* info) {
  gfs::Status s = c->Mkdir("/r", false);
  const uint64_t size = 65536 + 5;
  std::vector<uint8_t> bytes(size);
  Fill(7, 0, bytes.data(), size);
  for (const char* p : {"/r/f", "/r/g"}) {
    if (!s.ok()) break;
    auto f = c->Create(p);
    s = f.status();
    if (s.ok() && std::string(p) == "/r/f") s = c->Write(&*f, 0, bytes.data(), size);
    if (s.ok()) s = c->Close(&*f);
  }
  if (!s.ok()) return "setting up /r: " + s.ToString();
  WriteText(work + "/ready", "1");
  uint64_t calls = 0;
  double slowest = 0;
  const double until = Now() + 300;
  while (!std::ifstream(work + "/done").good()) {
    if (Now() > until) return "the script never wrote " + work + "/done";
    const double t0 = Now();
    auto st = c->Stat("/r/f");
    if (!st.ok()) return "stat /r/f: " + st.status().ToString();
    if (st->is_dir || st->size != size) return "stat /r/f: wrong size " + std::to_string(st->size);
    WriteText(work + "/progress", std::to_string(++calls));
    auto l = c->List("/r");
    if (!l.ok()) return "list /r: " + l.status().ToString();
    if (l->size() != 2) return "list /r: " + std::to_string(l->size()) + " entries, want 2";
    WriteText(work + "/progress", std::to_string(++calls));
    slowest = std::max(slowest, Now() - t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  char buf[120];
  std::snprintf(buf, sizeof buf, "calls=%llu slowest_pair_s=%.2f",
                static_cast<unsigned long long>(calls), slowest);
  *info = buf;
  return "";
}

// ---- crash / check ----

struct Extent {
  uint64_t off, len, seed;
};
struct FileModel {
  std::vector<Extent> writes;  // in order; later ones win
  uint64_t length = 0;
};

void Materialize(const FileModel& m, std::vector<uint8_t>* out) {
  out->assign(m.length, 0);
  for (const Extent& e : m.writes) Fill(e.seed, e.off, out->data() + e.off, e.len);
}

std::string RunCrash(gfs::Client* c, const Args& a, const std::string& work) {
  std::mt19937_64 rng(Num(a, "seed", 1));
  FILE* log = std::fopen((work + "/ops.log").c_str(), "a");
  if (log == nullptr) return "cannot open ops.log";
  auto begin = [&](const std::string& op) {
    std::fprintf(log, "B %s\n", op.c_str());
    std::fflush(log);
  };
  auto ack = [&](const gfs::Status& s) {
    if (s.ok()) {
      std::fprintf(log, "A\n");
    } else {
      std::fprintf(log, "F %s\n", s.ToString().c_str());
    }
    std::fflush(log);
    return s.ok();
  };
  std::vector<std::string> dirs;
  std::map<std::string, FileModel> files;
  uint64_t next_dir = 0, next_file = 0, next_seed = Num(a, "seed", 1) << 32;
  const uint64_t max_file = 3u << 20;
  for (uint64_t step = 0;; ++step) {
    int pick = static_cast<int>(rng() % 100);
    if (dirs.empty() || pick < 4) {
      std::string d = "/d" + std::to_string(next_dir++);
      begin("mkdir " + d);
      if (!ack(c->Mkdir(d, false))) return "mkdir " + d + " failed";
      dirs.push_back(d);
    } else if (files.size() < 2 || pick < 12) {
      std::string p = dirs[rng() % dirs.size()] + "/f" + std::to_string(next_file++);
      begin("create " + p);
      auto f = c->Create(p);
      if (!ack(f.status())) return "create " + p + " failed";
      files[p] = FileModel{};
    } else if (pick < 18) {
      auto it = std::next(files.begin(), static_cast<long>(rng() % files.size()));
      std::string to = dirs[rng() % dirs.size()] + "/f" + std::to_string(next_file++);
      begin("rename " + it->first + " " + to);
      if (!ack(c->Rename(it->first, to))) return "rename " + it->first + " failed";
      files[to] = it->second;
      files.erase(it);
    } else if (pick < 23) {
      auto it = std::next(files.begin(), static_cast<long>(rng() % files.size()));
      begin("rm " + it->first);
      if (!ack(c->Remove(it->first, false))) return "rm " + it->first + " failed";
      files.erase(it);
    } else {
      // A write: extending the file or overwriting part of it, then fsync.
      auto it = std::next(files.begin(), static_cast<long>(rng() % files.size()));
      FileModel& m = it->second;
      uint64_t len = 1 + rng() % (600u << 10);
      uint64_t off = m.length == 0 || rng() % 3 != 0 ? m.length : rng() % m.length;
      if (off + len > max_file) off = rng() % (max_file - len);
      uint64_t seed = ++next_seed;
      std::vector<uint8_t> buf(len);
      Fill(seed, off, buf.data(), len);
      begin("write " + it->first + " " + std::to_string(off) + " " + std::to_string(len) + " " +
            std::to_string(seed));
      auto f = c->Open(it->first);
      gfs::Status s = f.status();
      if (s.ok()) s = c->Write(&*f, off, buf.data(), len);
      if (s.ok()) s = c->Fsync(&*f);
      if (!ack(s)) return "write " + it->first + " failed: " + s.ToString();
      m.writes.push_back({off, len, seed});
      m.length = std::max(m.length, off + len);
    }
    if (a.count("ops") && step + 1 >= Num(a, "ops", 0)) break;
  }
  std::fclose(log);
  return "";
}

std::string RunCheck(gfs::Client* c, const Args& a, const std::string& work, std::string* info) {
  std::ifstream in(work + "/ops.log");
  std::set<std::string> dirs;
  std::map<std::string, FileModel> files;
  std::string line, pending;  // the operation in flight at the kill, if any
  int acked = 0;
  auto apply = [&](const std::string& op) {
    std::istringstream ss(op);
    std::string kind, p, q;
    ss >> kind >> p;
    if (kind == "mkdir") dirs.insert(p);
    if (kind == "create") files[p] = FileModel{};
    if (kind == "rename") {
      ss >> q;
      files[q] = files[p];
      files.erase(p);
    }
    if (kind == "rm") files.erase(p);
    if (kind == "write") {
      Extent e{};
      ss >> e.off >> e.len >> e.seed;
      FileModel& m = files[p];
      m.writes.push_back(e);
      m.length = std::max(m.length, e.off + e.len);
    }
  };
  while (std::getline(in, line)) {
    if (line.rfind("B ", 0) == 0) {
      pending = line.substr(2);
    } else if (line == "A") {
      apply(pending);
      pending.clear();
      ++acked;
    } else if (line.rfind("F ", 0) == 0) {
      return "an operation failed in the killed job: " + pending + ": " + line.substr(2);
    }
  }
  // The operation in flight may or may not have happened.
  std::istringstream ps(pending);
  std::string pkind, ppath, pto;
  ps >> pkind >> ppath >> pto;
  for (const std::string& d : dirs) {
    auto st = c->Stat(d);
    if (!st.ok() || !st->is_dir) return "acknowledged directory " + d + " is missing";
  }
  uint64_t checked = 0;
  for (const auto& [path, model] : files) {
    std::string where = path;
    if (pkind == "rename" && ppath == path) {
      if (!c->Stat(path).ok()) where = pto;  // the rename went through
    }
    if (pkind == "rm" && ppath == path && !c->Stat(path).ok()) continue;
    std::vector<uint8_t> want;
    Materialize(model, &want);
    if (pkind == "write" && ppath == path) {
      // The write in flight: each byte it covers is old or new, and the file
      // may have grown to its end.
      std::istringstream ws(pending);
      std::string k, p;
      Extent e{};
      ws >> k >> p >> e.off >> e.len >> e.seed;
      auto f = c->Open(where);
      if (!f.ok()) return "open " + where + ": " + f.status().ToString();
      uint64_t end = std::max(model.length, e.off + e.len);
      if (f->length < model.length || f->length > end) {
        return where + " is " + std::to_string(f->length) + " bytes; acknowledged " +
               std::to_string(model.length) + ", at most " + std::to_string(end);
      }
      std::vector<uint8_t> got(f->length), neu(e.len);
      Fill(e.seed, e.off, neu.data(), e.len);
      auto r = c->Read(&*f, 0, got.data(), got.size());
      if (!r.ok() || *r != got.size()) return "read " + where + " failed";
      for (uint64_t i = 0; i < got.size(); ++i) {
        bool in_new = i >= e.off && i < e.off + e.len;
        bool old_ok = i < want.size() ? got[i] == want[i] : got[i] == 0;
        if (!old_ok && !(in_new && got[i] == neu[i - e.off])) {
          return where + ": wrong byte at " + std::to_string(i) + " (write in flight at the kill)";
        }
      }
      checked += got.size();
      continue;
    }
    std::string bad = CompareFile(c, where, want);
    if (!bad.empty()) return bad;
    checked += want.size();
  }
  // Acknowledged removals and renames: the old names are gone.
  std::ifstream again(work + "/ops.log");
  std::string op;
  while (std::getline(again, line)) {
    if (line.rfind("B ", 0) == 0) {
      op = line.substr(2);
      continue;
    }
    if (line != "A") continue;
    std::istringstream ss(op);
    std::string kind, p;
    ss >> kind >> p;
    if ((kind == "rm" || kind == "rename") && files.count(p) == 0 &&
        !(pkind == "rename" && pto == p) && !(pkind == "create" && ppath == p)) {
      if (c->Stat(p).ok()) return p + " was removed or renamed, yet it is still there";
    }
  }
  std::string why;
  gfs::Status s = WaitReplicated(c, "/", static_cast<double>(Num(a, "wait", 60)), &why);
  if (!s.ok()) return "after the restart: " + s.ToString();
  *info = "acked_ops=" + std::to_string(acked) + " files=" + std::to_string(files.size()) +
          " bytes_checked=" + std::to_string(checked) + " in_flight='" + pending + "'";
  return "";
}

// ---- scrub ----

std::string RunScrub(gfs::Client* c, const Args& a, std::string* info) {
  const std::string path = a.count("path") ? a.at("path") : "/f";
  std::ifstream in(a.at("local"), std::ios::binary);
  std::vector<uint8_t> want((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const double t0 = Now(), until = t0 + static_cast<double>(Num(a, "wait", 60));
  // The flipped replica's file (replica=PATH, chunk=K of the file): repaired
  // in place once it holds the file's bytes again. The repair can be over
  // before a poll of fsck sees the replica listed as damaged.
  auto healed = [&]() {
    if (!a.count("replica")) return false;
    std::ifstream r(a.at("replica"), std::ios::binary);
    std::vector<uint8_t> got((std::istreambuf_iterator<char>(r)), std::istreambuf_iterator<char>());
    const uint64_t cs = Num(a, "chunk", 8u << 20), k = Num(a, "index", 0);
    const uint64_t start = std::min<uint64_t>(k * cs, want.size());
    const uint64_t end = std::min<uint64_t>(start + cs, want.size());
    return got.size() == end - start && std::equal(got.begin(), got.end(), want.begin() + start);
  };
  double found = 0;
  while (found == 0) {
    auto r = c->Fsck(path, false);
    if (!r.ok()) return "fsck: " + r.status().ToString();
    for (const gfs::FsckFile& f : r->files) {
      for (const gfs::FsckChunk& ch : f.chunks) {
        if (!ch.corrupt.empty()) found = Now();
      }
    }
    if (found == 0 && healed()) found = Now();
    if (found == 0 && Now() > until) return "no scrubber reported the corrupt replica";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string why;
  gfs::Status s = WaitReplicated(c, path, until - Now() + 30, &why);
  if (!s.ok()) return "repair: " + s.ToString();
  const double repaired = Now();
  std::string bad = CompareFile(c, path, want);
  if (!bad.empty()) return bad;
  char buf[120];
  std::snprintf(buf, sizeof buf, "found_s=%.2f repaired_s=%.2f", found - t0, repaired - t0);
  *info = buf;
  return "";
}

// ---- blocks ----

std::string RunBlocks(gfs::Client* c, const Args& a, const std::string& work, std::string* info) {
  const std::string path = a.count("path") ? a.at("path") : "/f";
  std::ifstream in(a.at("local"), std::ios::binary);
  std::vector<uint8_t> want((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto f = c->Open(path);
  if (!f.ok()) return "open: " + f.status().ToString();
  if (f->length != want.size()) {
    return "length " + std::to_string(f->length) + ", expected " + std::to_string(want.size());
  }
  constexpr size_t kBlock = 64 * 1024;
  std::string lines;
  size_t errors = 0, wrong = 0;
  std::vector<uint8_t> buf(kBlock);
  for (uint64_t off = 0; off < want.size(); off += kBlock) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, want.size() - off));
    auto got = c->Read(&*f, off, buf.data(), n);
    lines += std::to_string(off);
    if (!got.ok()) {
      ++errors;
      lines += " err " + got.status().ToString() + "\n";
    } else if (*got != n || std::memcmp(buf.data(), want.data() + off, n) != 0) {
      ++wrong;
      lines += " wrong\n";
    } else {
      lines += " ok\n";
    }
  }
  std::ofstream(work + "/blocks", std::ios::trunc) << lines;
  *info = "unreadable=" + std::to_string(errors);
  if (wrong > 0) return std::to_string(wrong) + " blocks read back wrong";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  if (argc < 4) {
    std::fprintf(stderr, "usage: fault_client MODE DATA_DIR WORK_DIR [key=value...]\n");
    MPI_Finalize();
    return 2;
  }
  const std::string mode = argv[1], work = argv[3];
  const Args a = gfs::stream::ParseArgs(argc, argv, 4);
  gfs::JobConfig cfg;
  cfg.data_dir = argv[2];
  cfg.chunkservers = static_cast<int>(Num(a, "cs", 4));
  cfg.replication = static_cast<uint32_t>(Num(a, "r", 3));
  cfg.chunk_size = Num(a, "chunk", 8u << 20);
  cfg.heartbeat_ms = static_cast<uint32_t>(Num(a, "hb", 200));
  cfg.request_timeout_ms = static_cast<uint32_t>(Num(a, "timeout", 3000));
  cfg.lease_seconds = static_cast<uint32_t>(Num(a, "lease", 60));
  cfg.scrub_mb_per_s = static_cast<uint32_t>(Num(a, "scrub", 32));
  cfg.shadows = static_cast<int>(Num(a, "shadows", 0));
  if (a.count("stats")) cfg.stats_dir = a.at("stats");
  gfs::Session s;
  gfs::Status st = gfs::Init(MPI_COMM_WORLD, cfg, &s);
  std::string bad, info;
  if (!st.ok()) {
    bad = "init: " + st.ToString();
  } else if (s.is_client() && s.client_index() == 0) {
    gfs::Client* c = s.client();
    if (mode == "put") {
      bad = RunPut(c, a, work, &info);
    } else if (mode == "failover") {
      bad = RunPut(c, a, work, &info, [&] { return AfterFailover(c, a, work); });
    } else if (mode == "verify") {
      bad = RunVerify(c, a, &info);
    } else if (mode == "reads") {
      bad = RunReads(c, work, &info);
    } else if (mode == "crash") {
      bad = RunCrash(c, a, work);
    } else if (mode == "check") {
      bad = RunCheck(c, a, work, &info);
    } else if (mode == "scrub") {
      bad = RunScrub(c, a, &info);
    } else if (mode == "blocks") {
      bad = RunBlocks(c, a, work, &info);
    } else {
      bad = "unknown mode " + mode;
    }
  }
  if (!st.ok() || (s.is_client() && s.client_index() == 0)) {
    WriteText(work + "/result", bad.empty() ? "OK " + info : "FAIL " + bad);
  }
  if (gfs::Status fin = gfs::Finalize(&s, bad.empty() ? 0 : 1); !fin.ok()) {
    std::fprintf(stderr, "finalize: %s\n", fin.ToString().c_str());
  }
  MPI_Finalize();
  return bad.empty() ? 0 : 1;
}
