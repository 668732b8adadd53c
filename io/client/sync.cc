// Durability: fsync and close (every replica syncs), and the file lengths
// told to the master lazily (NoteEnd, ReportLength).
#include <algorithm>
#include <thread>

#include "io/client.h"
#include "io/client/lease_cache.h"
#include "io/client/retry_policy.h"

namespace gfs {

Status Client::Fsync(File* f) {
  // Sync every replica the data went to. A replica that fails to answer (its
  // chunkserver died) is asked again until the master stops listing it for
  // the chunk: then the data is durable on the replicas that are left, which
  // acknowledged it, and re-replication copies it from them.
  std::map<uint64_t, std::vector<int32_t>> todo = f->dirty;
  Retry retry(RetryPolicy::ForSync());
  for (;;) {
    std::vector<std::pair<uint64_t, int32_t>> sent;
    std::vector<uint64_t> ids;
    for (const auto& [handle, replicas] : todo) {
      for (int32_t r : replicas) {
        auto id = rpc_.Start(r, SyncReq{handle}, cfg_.request_timeout_ms);
        if (!id.ok()) return id.status();
        ids.push_back(*id);
        sent.emplace_back(handle, r);
      }
    }
    std::map<uint64_t, std::vector<int32_t>> failed;
    Status first;
    for (size_t i = 0; i < ids.size(); ++i) {
      auto m = rpc_.Wait(ids[i]);
      Status s = m.ok() ? m->status() : m.status();
      if (s.ok()) continue;
      if (!Retryable(s.code())) return s;
      if (first.ok()) first = s;
      failed[sent[i].first].push_back(sent[i].second);
    }
    if (failed.empty()) break;
    const uint64_t now = MonoMicros();
    if (!retry.Failed(now)) return first;
    stats_.counters["fsync_retries"]++;
    std::this_thread::sleep_for(std::chrono::microseconds(retry.not_before_us() - now));
    // Which of the failed replicas does the master still count?
    cache_->DropLocations(f->id);
    uint32_t chunks = static_cast<uint32_t>(f->length / f->chunk_size + 1);
    GFS_RETURN_IF_ERROR(FetchLocations(f, 0, chunks));
    std::map<uint64_t, std::vector<int32_t>> live = cache_->ReplicasOf(f->id);
    todo.clear();
    for (const auto& [handle, replicas] : failed) {
      const std::vector<int32_t>& now = live[handle];
      for (int32_t r : replicas) {
        if (std::find(now.begin(), now.end(), r) != now.end()) todo[handle].push_back(r);
      }
    }
    if (todo.empty()) break;
  }
  f->dirty.clear();
  // The bytes are durable; now the length that covers them.
  return ReportLength(f->id);
}

Status Client::Close(File* f) {
  ForgetStream(f->id);
  return Fsync(f);
}

void Client::NoteEnd(File* f, uint64_t end) {
  f->length = std::max(f->length, end);
  Unreported& u = unreported_[f->id];
  u.path = f->path;
  u.end = std::max(u.end, end);
}

Status Client::ReportLength(uint64_t id) {
  auto it = unreported_.find(id);
  if (it == unreported_.end()) return Status::OK();
  SetLengthReq req;
  req.path = it->second.path;
  req.file_id = id;
  req.length = it->second.end;
  req.grow_only = true;
  SetLengthReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  unreported_.erase(id);
  return Status::OK();
}

Status Client::ReportLengthsUnder(const std::string& path) {
  std::vector<uint64_t> ids;
  for (const auto& [id, u] : unreported_) {
    if (u.path == path ||
        (u.path.size() > path.size() && u.path.compare(0, path.size(), path) == 0 &&
         (path == "/" || u.path[path.size()] == '/'))) {
      ids.push_back(id);
    }
  }
  for (uint64_t id : ids) GFS_RETURN_IF_ERROR(ReportLength(id));
  return Status::OK();
}

}  // namespace gfs
