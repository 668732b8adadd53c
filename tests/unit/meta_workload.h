// A seeded random stream of valid MetaOps for journal and checkpoint tests:
// nested directories, files with several chunks and holes, version bumps,
// growing and shrinking lengths, renames of files and directories, and
// deletes (recursive too), so that states have freed ids, dead names and
// multi-chunk files.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "master/meta_state.h"

namespace gfs {

class MetaWorkload {
 public:
  explicit MetaWorkload(uint32_t seed) : rng_(seed) {}

  // The next op that is valid against *state; it is applied to *state.
  MetaOp Next(MetaState* state) {
    for (;;) {
      MetaOp op = Candidate(*state);
      if (!state->Check(op).ok()) continue;
      Status s = state->Apply(op);
      if (!s.ok()) continue;  // cannot happen: Check agreed
      if (op.type == OpType::kMkdir) dirs_.push_back(op.path);
      if (op.type == OpType::kCreate) files_.push_back({op.path, op.id});
      if (op.type == OpType::kAddChunk) handles_.push_back(op.handle);
      ++time_;
      return op;
    }
  }

 private:
  struct F {
    std::string path;
    uint64_t id;
  };
  uint64_t Pick(size_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  // A directory (maybe deleted since: its ops then fail Check and are
  // skipped); the root a quarter of the time.
  std::string Dir() { return dirs_.empty() || Pick(4) == 0 ? "" : dirs_[Pick(dirs_.size())]; }

  MetaOp Candidate(const MetaState& st) {
    const uint64_t r = Pick(100);
    const int64_t t = 1000 + time_;
    if (r < 10 || dirs_.empty()) {
      return MetaOp::Mkdir(Dir() + "/d" + std::to_string(Pick(40)), false);
    }
    if (r < 35 || files_.empty()) {
      return MetaOp::Create(Dir() + "/f" + std::to_string(Pick(100000)), st.NextFileId(),
                            1 + static_cast<uint32_t>(Pick(3)), 100, t);
    }
    const F& f = files_[Pick(files_.size())];
    if (r < 65) {
      return MetaOp::AddChunk(f.id, static_cast<uint32_t>(Pick(6)), st.NextHandle(), 1, t);
    }
    if (r < 75 && !handles_.empty()) {
      const uint64_t h = handles_[Pick(handles_.size())];
      const ChunkInfo* c = st.FindChunk(h);
      return MetaOp::SetVersion(h, (c ? c->version : 0) + 1 + Pick(3));
    }
    if (r < 85) return MetaOp::SetLength(f.id, Pick(700), t);
    if (r < 93) {
      const bool dir = Pick(4) == 0;
      return MetaOp::Rename(dir ? Dir() : f.path, Dir() + "/m" + std::to_string(Pick(100000)));
    }
    const bool dir = Pick(3) == 0;
    return MetaOp::Delete(dir ? Dir() : f.path, true);
  }

  std::mt19937_64 rng_;
  std::vector<std::string> dirs_;
  std::vector<F> files_;
  std::vector<uint64_t> handles_;
  int64_t time_ = 0;
};

}  // namespace gfs
