// Master metadata benchmark: memory per file and per chunk, checkpoint write
// and load, op-log append and replay, restart (checkpoint + log), and a
// background checkpoint. One process, no MPI ranks.
//
//   build/bench/gfs-meta-bench [--files N] [--per-dir K] [--log-records M]
//       [--dir DIR] [--json FILE]
//
// Steps (N files in N/K directories, one chunk each; M = --log-records):
//  1. build:     N creates then N add_chunks applied to a MetaState; memory
//                is the malloc'd bytes (mallinfo2) the state grew by, per file
//                (after the creates) and per chunk (after the add_chunks);
//  2. checkpoint write: the whole state to <dir>/checkpoint-<seq> (tmp file,
//                fsync, rename, fsync of the directory);
//  3. checkpoint load: MetaJournal::Open on that directory (no log records);
//  4. log append: M more ops (creates and add_chunks) through the journal,
//                Sync every 1000 (group commit), applied to the live state;
//  5. restart:   MetaJournal::Open again: checkpoint + M log records; the
//                replay rate is M / (restart - checkpoint load);
//  6. background checkpoint: CheckpointNow + WaitForCheckpoint (rebuilt from
//                disk in the journal's thread, written, retention applied).
// Prints a table and, with --json, one JSON object per line.
#include <malloc.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/env.h"
#include "master/checkpoint.h"
#include "master/journal.h"
#include "master/meta_state.h"

namespace {

using gfs::MetaOp;
using gfs::MetaState;
using gfs::Status;

struct Args {
  uint64_t files = 1000000;
  uint64_t per_dir = 1000;
  uint64_t log_records = 100000;
  std::string dir, json;
};

size_t MallocBytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void Die(const char* what, const Status& s) {
  std::fprintf(stderr, "gfs-meta-bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

namespace po = boost::program_options;
using Json = nlohmann::json;

#ifndef GFS_VERSION
#define GFS_VERSION "unknown"
#endif

po::options_description Options(Args* a) {
  po::options_description d("gfs-meta-bench options");
  d.add_options()("help", "this help")("version", "print the version")(
      "files", po::value(&a->files), "files in the namespace, one chunk each (default 1000000)")(
      "per-dir", po::value(&a->per_dir), "files per directory (default 1000)")(
      "log-records", po::value(&a->log_records),
      "op-log records appended and replayed after the checkpoint (default 100000)")(
      "dir", po::value(&a->dir),
      "where the checkpoint and logs go (default: a temporary directory under /tmp, removed "
      "afterwards; a given DIR is left in place)")(
      "json", po::value(&a->json), "also write one JSON object per result line to FILE");
  return d;
}

class Report {
 public:
  explicit Report(const Args& a) : a_(a) {
    if (!a.json.empty()) {
      json_ = std::fopen(a.json.c_str(), "w");
      if (!json_) {
        std::fprintf(stderr, "gfs-meta-bench: cannot open %s\n", a.json.c_str());
        std::exit(1);
      }
    }
  }
  ~Report() {
    if (json_) std::fclose(json_);
  }
  // One result: a name, a value with its unit, and an optional rate.
  void Line(const char* metric, double value, const char* unit, double rate = 0,
            const char* rate_unit = "") {
    if (rate > 0) {
      std::printf("%-28s %14.3f %-6s %14.0f %s\n", metric, value, unit, rate, rate_unit);
    } else {
      std::printf("%-28s %14.3f %-6s\n", metric, value, unit);
    }
    std::fflush(stdout);
    if (json_) {
      Json j{{"bench", "meta"}, {"metric", metric},  {"value", value},
             {"unit", unit},    {"files", a_.files}, {"log_records", a_.log_records}};
      if (rate > 0) {
        j["rate"] = rate;
        j["rate_unit"] = rate_unit;
      }
      std::fprintf(json_, "%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
      std::fflush(json_);
    }
  }

 private:
  const Args& a_;
  FILE* json_ = nullptr;
};

std::string DirName(uint64_t d) {
  char b[32];
  std::snprintf(b, sizeof b, "/d%06" PRIu64, d);
  return b;
}
std::string FileName(uint64_t f) {
  char b[32];
  std::snprintf(b, sizeof b, "/f%07" PRIu64, f);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  po::options_description d = Options(&a);
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, d), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gfs-meta-bench: %s (see --help)\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << "usage: gfs-meta-bench [options]\n\n" << d;
    return 0;
  }
  if (vm.count("version")) {
    std::printf("gfs-meta-bench %s\n", GFS_VERSION);
    return 0;
  }
  if (a.files == 0 || a.per_dir == 0) {
    std::fprintf(stderr, "gfs-meta-bench: --files and --per-dir must be positive\n");
    return 2;
  }
  const bool temp_dir = a.dir.empty();
  if (temp_dir) a.dir = "/tmp/gfs-meta-bench-" + std::to_string(::getpid());
  std::filesystem::remove_all(a.dir);
  gfs::Env* env = gfs::Env::Posix();
  if (Status s = env->CreateDirs(a.dir); !s.ok()) Die("create dir", s);
  Report r(a);
  std::printf("gfs-meta-bench: %" PRIu64 " files (%" PRIu64 " per directory), %" PRIu64
              " log records, dir %s\n",
              a.files, a.per_dir, a.log_records, a.dir.c_str());

  // 1. Build.
  auto live = std::make_unique<MetaState>();
  uint64_t seq = 0;
  auto apply = [&](const MetaOp& op) {
    Status s = live->Apply(op);
    if (!s.ok()) Die(op.ToString().c_str(), s);
    ++seq;
  };
  const size_t m0 = MallocBytes();
  double t = Now();
  for (uint64_t f = 0; f < a.files; ++f) {
    if (f % a.per_dir == 0) apply(MetaOp::Mkdir(DirName(f / a.per_dir), false));
    apply(MetaOp::Create(DirName(f / a.per_dir) + FileName(f), live->NextFileId(), 3, 64 << 20,
                         1700000000000 + static_cast<int64_t>(f)));
  }
  const double t_create = Now() - t;
  const size_t m1 = MallocBytes();
  t = Now();
  for (uint64_t id = 1; id <= a.files; ++id) {
    apply(MetaOp::AddChunk(id, 0, live->NextHandle(), 1, 1700000000000));
  }
  const double t_chunks = Now() - t;
  const size_t m2 = MallocBytes();
  const double n = static_cast<double>(a.files);
  r.Line("build_creates", t_create, "s", n / t_create, "ops/s");
  r.Line("build_add_chunks", t_chunks, "s", n / t_chunks, "ops/s");
  r.Line("memory_per_file", static_cast<double>(m1 - m0) / n, "B");
  r.Line("memory_per_chunk", static_cast<double>(m2 - m1) / n, "B");
  r.Line("state_bytes_total", static_cast<double>(live->MemoryBytes()) / 1e6, "MB");

  // 2. Checkpoint write.
  const std::string ckpt = a.dir + "/" + gfs::MetaJournal::CheckpointName(seq);
  uint64_t ckpt_bytes = 0;
  t = Now();
  if (Status s = gfs::WriteCheckpointFile(env, ckpt, *live, seq, 1, nullptr, &ckpt_bytes);
      !s.ok()) {
    Die("checkpoint write", s);
  }
  const double t_write = Now() - t;
  r.Line("checkpoint_write", t_write, "s", n / t_write, "files/s");
  r.Line("checkpoint_size", static_cast<double>(ckpt_bytes) / 1e6, "MB");
  r.Line("checkpoint_bytes_per_file", static_cast<double>(ckpt_bytes) / n, "B");

  gfs::JournalOptions jo;
  jo.roll_bytes = uint64_t{1} << 40;  // one log for the whole run
  // 3. Checkpoint load (a restart with an empty log).
  double t_load = 0;
  {
    gfs::MetaJournal j(env, a.dir, jo);
    MetaState st;
    uint64_t last = 0;
    t = Now();
    if (Status s = j.Open(&st, &last, nullptr); !s.ok()) Die("open (checkpoint)", s);
    t_load = Now() - t;
    if (last != seq || st.NumFiles() != live->NumFiles()) Die("checkpoint load", Status::OK());
    r.Line("checkpoint_load", t_load, "s", n / t_load, "files/s");

    // 4. Log append (the same journal, positioned after the checkpoint).
    const uint64_t m = a.log_records;
    const uint64_t base_dir = a.files / a.per_dir + 1;
    std::vector<uint64_t> new_ids;
    t = Now();
    for (uint64_t i = 0; i < m; ++i) {
      MetaOp op;
      if (i % 2 == 0) {
        const uint64_t f = i / 2;
        if (f % a.per_dir == 0) {
          op = MetaOp::Mkdir(DirName(base_dir + f / a.per_dir), false);
        } else {
          op = MetaOp::Create(DirName(base_dir + f / a.per_dir) + FileName(f), st.NextFileId(), 3,
                              64 << 20, 1);
          new_ids.push_back(op.id);
        }
      } else if (!new_ids.empty()) {
        op = MetaOp::AddChunk(new_ids.back(), 0, st.NextHandle(), 1, 2);
        new_ids.pop_back();
      } else {
        op = MetaOp::SetVersion(1, st.FindChunk(1)->version + 1);
      }
      uint64_t got = 0;
      if (Status s = j.Append(op, &got); !s.ok()) Die("append", s);
      if (Status s = st.Apply(op); !s.ok()) Die("apply", s);
      apply(op);
      if ((i + 1) % 1000 == 0) {
        if (Status s = j.Sync(); !s.ok()) Die("sync", s);
      }
    }
    if (Status s = j.Sync(); !s.ok()) Die("sync", s);
    const double t_append = Now() - t;
    if (m > 0) {
      r.Line("log_append_sync1000", t_append, "s", static_cast<double>(m) / t_append, "rec/s");
    }
    r.Line("log_fsyncs", static_cast<double>(j.sync_count()), "");
  }

  // 5. Restart: checkpoint + the log.
  {
    gfs::MetaJournal j(env, a.dir, jo);
    MetaState st;
    uint64_t last = 0;
    t = Now();
    if (Status s = j.Open(&st, &last, nullptr); !s.ok()) Die("open (restart)", s);
    const double t_restart = Now() - t;
    if (last != seq || st.NumFiles() != live->NumFiles() || st.NumChunks() != live->NumChunks()) {
      Die("restart does not match the live state", Status::OK());
    }
    r.Line("restart_checkpoint_plus_log", t_restart, "s");
    if (a.log_records > 0 && t_restart > t_load) {
      const double replay = t_restart - t_load;
      r.Line("log_replay", replay, "s", static_cast<double>(a.log_records) / replay, "rec/s");
    }
    // 6. Background checkpoint of it all.
    t = Now();
    if (Status s = j.CheckpointNow(); !s.ok()) Die("checkpoint now", s);
    const double t_start = Now() - t;
    if (Status s = j.WaitForCheckpoint(); !s.ok()) Die("background checkpoint", s);
    const double t_bg = Now() - t;
    r.Line("bg_checkpoint_owner_stall", t_start, "s");
    r.Line("bg_checkpoint_total", t_bg, "s");
  }
  if (temp_dir) std::filesystem::remove_all(a.dir);
  return 0;
}
