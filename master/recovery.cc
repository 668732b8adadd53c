// MasterServer reconciling replicas with the log once chunkservers have
// registered: lengths written by a killed job (RecoverLengths,
// ResolveLengths), chunks wholly past a file's end, and replicas behind the
// logged version (ResolveBehind). doc/architecture.md, "Crashes during a
// mutation".
#include <algorithm>

#include "common/log.h"
#include "master/master_server.h"

namespace gfs {

void MasterServer::RecoverLengths() {
  // Lengths are logged lazily (at fsync, close, rename, a client's end), so a
  // job killed before that leaves acknowledged bytes past a file's logged
  // length. The replicas say how far each chunk reaches: the file grows to
  // cover the last chunk holding bytes on a replica at the logged version.
  struct Grow {
    uint64_t id, length;
    int64_t mtime_ms;
  };
  std::vector<Grow> grows;
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    if (f.chunk_size == 0) return;
    for (size_t i = f.chunks.size(); i-- > 0;) {
      auto rl = reported_len_.find(f.chunks[i]);
      if (f.chunks[i] == 0 || rl == reported_len_.end()) continue;
      uint64_t longest = 0;
      for (const auto& [rank, len] : rl->second) longest = std::max(longest, len);
      if (longest == 0) continue;
      const uint64_t end = uint64_t{i} * f.chunk_size + longest;
      if (end > f.length) grows.push_back({f.id, end, f.mtime_ms});
      break;
    }
  });
  for (const Grow& g : grows) {
    if (!Mutate(MetaOp::SetLength(g.id, g.length, g.mtime_ms)).ok()) return;
    stats_.counters["lengths_recovered"]++;
  }
}

void MasterServer::DropChunksPastEnd() {
  struct Cut {
    uint64_t id, length, cover;
    int64_t mtime_ms;
  };
  std::vector<Cut> cuts;
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    if (f.chunk_size == 0) return;
    const uint64_t keep = f.length / f.chunk_size + (f.length % f.chunk_size != 0 ? 1 : 0);
    if (f.chunks.size() > keep) {
      cuts.push_back({f.id, f.length, f.chunks.size() * f.chunk_size, f.mtime_ms});
    }
  });
  for (const Cut& c : cuts) {
    // Two plain records (a length over every chunk, then the real one, which
    // frees those past it): replay on any copy does the same.
    std::vector<uint64_t> freed;
    if (!Mutate(MetaOp::SetLength(c.id, c.cover, c.mtime_ms)).ok() ||
        !Mutate(MetaOp::SetLength(c.id, c.length, c.mtime_ms), &freed).ok()) {
      return;  // the log is broken: requests will say so
    }
    stats_.counters["chunks_past_end_dropped"] += freed.size();
    ForgetChunks(freed);
  }
}

void MasterServer::ResolveBehind() {
  const bool all_registered = std::all_of(cs_ranks_.begin(), cs_ranks_.end(), [&](int r) {
    auto it = servers_.find(r);
    return it != servers_.end() && it->second.registered;
  });
  for (auto it = behind_.begin(); it != behind_.end();) {
    const uint64_t handle = it->first;
    const ChunkInfo* info = meta_->FindChunk(handle);
    if (info == nullptr || !LiveReplicas(handle).empty()) {
      // A current replica exists (or the chunk is gone): these are stale.
      for (const auto& [rank, v] : it->second) servers_[rank].to_delete.push_back(handle);
      it = behind_.erase(it);
      continue;
    }
    if (!all_registered) {
      ++it;  // a missing server may hold the current version: wait for it
      continue;
    }
    // Every chunkserver has reported and none holds the logged version: no
    // lease was ever granted at it (a lease needs every replica to record
    // the version first), so the most advanced replicas hold every
    // acknowledged byte. Bring them to the logged version.
    uint64_t best = 0;
    for (const auto& e : it->second) best = std::max(best, e.second);
    for (const auto& [rank, v] : it->second) {
      if (v != best) {
        servers_[rank].to_delete.push_back(handle);
        continue;
      }
      PrepareChunkReq req;
      req.handle = handle;
      req.version = info->version;
      // Client requests wait until every such call has ended; a replica
      // that does not answer in time stays out of service.
      ++reviving_;
      calls_.Call(rank, req, cfg_.request_timeout_ms / 2,
                  AsMaster([this, handle, rank](const Result<Message>& r) {
                    --reviving_;
                    if (r.ok() && r->status().ok() && meta_->FindChunk(handle) != nullptr) {
                      auto& loc = locations_[handle];
                      if (std::find(loc.begin(), loc.end(), rank) == loc.end()) {
                        loc.push_back(rank);
                      }
                      TouchLocation(handle);
                    }
                    DispatchHeld();
                  }));
    }
    stats_.counters["versions_recovered"]++;
    GFS_LOG_WARN(
        "master: chunk %016llx: no replica holds logged version %llu; bringing "
        "the version-%llu replicas forward",
        static_cast<unsigned long long>(handle), static_cast<unsigned long long>(info->version),
        static_cast<unsigned long long>(best));
    it = behind_.erase(it);
  }
}

void MasterServer::ResolveLengths() {
  lengths_resolved_ = true;
  for (const auto& [handle, lens] : reported_len_) {
    const ChunkInfo* ci = meta_->FindChunk(handle);
    if (ci == nullptr || lens.size() < 2) continue;
    uint64_t longest = 0;
    for (const auto& [rank, len] : lens) longest = std::max(longest, len);
    // Only beside a longest replica that is whole: never the last good copy.
    auto bad = damaged_.find(handle);
    bool whole = false;
    for (const auto& [rank, len] : lens) {
      whole = whole || (len == longest && (bad == damaged_.end() || !bad->second.count(rank)));
    }
    if (!whole) continue;
    std::vector<int32_t> shorter;
    for (const auto& [rank, len] : lens) {
      if (len < longest) shorter.push_back(rank);
    }
    if (shorter.empty()) continue;
    auto& loc = locations_[handle];
    for (int32_t r : shorter) {
      auto pos = std::find(loc.begin(), loc.end(), r);
      if (pos == loc.end()) continue;
      loc.erase(pos);
      servers_[r].to_delete.push_back(handle);
      ClearDamaged(handle, r);
      stats_.counters["short_replicas_dropped"]++;
    }
    TouchLocation(handle);
    GFS_LOG_WARN(
        "master: chunk %016llx: %zu replica(s) at version %llu shorter than %llu "
        "bytes (a mutation cut short by a crash); the longest are kept",
        static_cast<unsigned long long>(handle), shorter.size(),
        static_cast<unsigned long long>(ci->version), static_cast<unsigned long long>(longest));
  }
  reported_len_.clear();
}

}  // namespace gfs
