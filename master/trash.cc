// MasterServer's trash and garbage collection (doc/architecture.md, "Trash
// and garbage collection"):
//   - `gfs rm` (kRemove) moves an entry to /.trash/<deletion ms>/<its path>
//     in one logged kMove, or deletes it at once (skip_trash, retention 0,
//     or an entry already in the trash);
//   - `gfs undelete` (kUndelete) moves the most recent deletion back;
//   - the namespace scan deletes trash older than the retention and transfer
//     temporaries left over by killed jobs (logged kDelete records whose
//     freed chunks go through ForgetChunks, the one place deleted chunks are
//     freed);
//   - the chunk scan (kHeldChunks) hands every live chunkserver its queued
//     deletes, learns what it still holds and queues what no file refers to
//     (orphans);
//   - `gfs expunge` (kExpunge) runs both scans now and answers once the
//     chunkservers have confirmed the deletes.
#include <algorithm>
#include <cstdlib>
#include <memory>

#include "common/log.h"
#include "master/master_server.h"

namespace gfs {
namespace {

constexpr char kTrashRoot[] = "/.trash";
constexpr char kTempPrefix[] = ".gfs-tmp.";  // io/tool/transfer.cc's temporaries
// Temporaries are removed only once this old at least, whatever the
// retention: a put may be writing one right now.
constexpr int64_t kMinTempAgeMs = 3600 * 1000;
// The chunk scan runs this often (orphans are also found at registration).
constexpr uint64_t kChunkScanPeriodUs = 300ull * 1000 * 1000;
// Rounds of one chunk scan: deletes sent in a round are confirmed by the
// next round's reply, which may name more orphans.
constexpr int kChunkScanRounds = 3;

bool InTrash(const std::string& norm) {
  const size_t n = sizeof(kTrashRoot) - 1;
  return norm.compare(0, n, kTrashRoot) == 0 && (norm.size() == n || norm[n] == '/');
}

// The deletion time a name of /.trash carries; -1 when it is not one.
int64_t TrashTime(const std::string& name) {
  if (name.empty() || name.size() > 18) return -1;
  for (char c : name) {
    if (c < '0' || c > '9') return -1;
  }
  return std::strtoll(name.c_str(), nullptr, 10);
}

}  // namespace

int64_t MasterServer::RetentionMs() const {
  return static_cast<int64_t>(cfg_.trash_retention_s) * 1000;
}

void MasterServer::StartTrashTimers() {
  // The namespace scan runs a few times per retention period (every minute
  // with the trash off, for trash left by jobs that kept it).
  const uint64_t r = cfg_.trash_retention_s;
  const uint64_t period_s = r == 0 ? 60 : std::clamp<uint64_t>(r / 4, 1, 600);
  timers_.Every(period_s * 1000 * 1000, [this] {
    if (mode_ != Mode::kMaster || !serving_ || !refusal_.ok()) return;
    ExpungeReply counts;
    if (TrashScan(false, &counts)) AfterBatch();
  });
  timers_.Every(kChunkScanPeriodUs, [this] {
    if (mode_ != Mode::kMaster || !serving_ || !refusal_.ok()) return;
    ChunkScan(1, std::make_shared<ChunkScanState>(), nullptr);
  });
}

bool MasterServer::TrashScan(bool all, ExpungeReply* counts) {
  const int64_t now = NowMs();
  const int64_t retention = RetentionMs();
  bool changed = false;
  std::vector<uint64_t> freed;
  // Trash: whole deletion-time directories whose time is past the retention.
  auto entries = meta_->List(kTrashRoot);
  if (entries.ok()) {
    for (const DirEntry& e : *entries) {
      const int64_t t = TrashTime(e.name);
      // A name that is not a time was not made by rm: removed as expired.
      if (!all && t >= 0 && t > now - retention) continue;
      freed.clear();
      if (!Mutate(MetaOp::Delete(std::string(kTrashRoot) + "/" + e.name, true), &freed).ok()) {
        continue;
      }
      ForgetChunks(freed);
      counts->trash_removed++;
      changed = true;
    }
  }
  // Temporaries of transfers whose job was killed: files named .gfs-tmp.*
  // untouched for longer than the retention (and at least an hour).
  const int64_t temp_age = std::max(retention, kMinTempAgeMs);
  std::vector<std::string> temps;
  meta_->ForEachFile([&](const std::string& path, const FileInfo& f) {
    const size_t slash = path.rfind('/');
    if (path.compare(slash + 1, sizeof(kTempPrefix) - 1, kTempPrefix) != 0) return;
    if (InTrash(path) || f.mtime_ms > now - temp_age) return;
    temps.push_back(path);
  });
  for (const std::string& p : temps) {
    freed.clear();
    if (!Mutate(MetaOp::Delete(p, false), &freed).ok()) continue;
    ForgetChunks(freed);
    counts->temps_removed++;
    changed = true;
  }
  if (changed) {
    GFS_LOG_INFO("master: garbage collection removed %llu trash entries and %llu temporaries",
                 static_cast<unsigned long long>(counts->trash_removed),
                 static_cast<unsigned long long>(counts->temps_removed));
  }
  return changed;
}

void MasterServer::ChunkScan(int rounds, std::shared_ptr<ChunkScanState> scan,
                             std::function<void()> done) {
  // From now until the scan ends, heartbeat replies leave the deletes to the
  // scan's requests, whose replies confirm them (bounded by the calls'
  // deadline, so a scan that never ends does not hold them for good).
  scan_holds_deletes_until_us_ = Now() + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000 * 2;
  // Started after the next log sync: the deletes sent depend on logged
  // records (a chunk is deleted only once the record freeing it is durable).
  DeferStart(
      [this, rounds, scan, done] {
        struct Round {
          int waiting = 0;
          bool more = false;  // orphans found: another round confirms their deletes
        };
        auto round = std::make_shared<Round>();
        auto finish = [this, rounds, scan, done, round] {
          if (round->more && rounds > 1) return ChunkScan(rounds - 1, scan, done);
          scan_holds_deletes_until_us_ = 0;
          if (done) done();
        };
        for (auto& [rank, st] : servers_) {
          if (!st.alive || !st.registered) continue;
          HeldChunksReq req;
          req.delete_handles.swap(st.to_delete);
          scan->counts.chunks_deleted += req.delete_handles.size();
          ++round->waiting;
          const int r = rank;
          std::vector<uint64_t> sent = req.delete_handles;
          calls_.Call(r, req, cfg_.request_timeout_ms,
                      AsMaster([this, r, sent, scan, round, finish](const Result<Message>& res) {
                        HeldChunksReply rep;
                        if (!res.ok() || !res->status().ok() || !res->Decode(&rep).ok()) {
                          // Not confirmed: the deletes go out again later.
                          auto& q = servers_[r].to_delete;
                          q.insert(q.end(), sent.begin(), sent.end());
                        } else {
                          for (uint64_t h : rep.handles) {
                            if (meta_->FindChunk(h) != nullptr) continue;
                            servers_[r].to_delete.push_back(h);
                            round->more = true;
                            if (!scan->orphans.insert({r, h}).second) continue;
                            stats_.counters[Counter::kOrphanReplicas]++;
                            scan->counts.orphans_deleted++;
                          }
                        }
                        if (--round->waiting == 0) finish();
                      }));
        }
        if (round->waiting == 0) finish();
      },
      [this, done] {
        scan_holds_deletes_until_us_ = 0;
        if (done) done();
      });
}

void MasterServer::OnRemove(Message& m) {
  RemoveReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  std::string norm;
  s = NormalizePath(r.path, &norm);
  if (!s.ok()) return DeferError(m, s);
  RemoveReply rep;
  std::vector<uint64_t> freed;
  if (r.skip_trash || cfg_.trash_retention_s == 0 || InTrash(norm)) {
    s = Mutate(MetaOp::Delete(norm, r.recursive), &freed);
    if (!s.ok()) return DeferError(m, s);
    ForgetChunks(freed);
    return DeferReply(m, rep);
  }
  // The same errors a delete gives (missing, a non-empty directory without -r).
  s = meta_->Check(MetaOp::Delete(norm, r.recursive));
  if (!s.ok()) return DeferError(m, s);
  // /.trash/<ms><path>; a later millisecond when that name is taken (the
  // same path removed twice within one millisecond).
  int64_t t = NowMs();
  std::string dst;
  do {
    dst = std::string(kTrashRoot) + "/" + std::to_string(t++) + norm;
  } while (meta_->Exists(dst));
  if (dst.size() > kMaxPathLen) {
    return DeferError(m, Status::InvalidArgument(
                             norm + ": the path is too long to move to the trash (rm --skip-trash "
                                    "deletes it at once)"));
  }
  s = Mutate(MetaOp::Move(norm, dst));
  if (!s.ok()) return DeferError(m, s);
  rep.trash_path = dst;
  DeferReply(m, rep);
}

void MasterServer::OnUndelete(Message& m) {
  UndeleteReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  std::string norm;
  s = NormalizePath(r.path, &norm);
  if (!s.ok()) return DeferError(m, s);
  if (norm == "/" || InTrash(norm)) {
    return DeferError(m, Status::InvalidArgument(norm + ": not a path that can be undeleted"));
  }
  if (meta_->Exists(norm)) {
    return DeferError(m, Status::AlreadyExists("it exists: move it away first"));
  }
  // The most recent deletion: the largest deletion time holding the path.
  int64_t best = -1;
  std::string from;
  auto entries = meta_->List(kTrashRoot);
  if (entries.ok()) {
    for (const DirEntry& e : *entries) {
      const int64_t t = TrashTime(e.name);
      if (t <= best) continue;
      std::string p = std::string(kTrashRoot) + "/" + e.name + norm;
      if (meta_->Exists(p)) {
        best = t;
        from = std::move(p);
      }
    }
  }
  if (best < 0) return DeferError(m, Status::NotFound("no deletion of it in the trash"));
  s = Mutate(MetaOp::Move(from, norm));
  if (!s.ok()) return DeferError(m, s);
  UndeleteReply rep;
  rep.trash_path = from;
  rep.deleted_ms = best;
  DeferReply(m, rep);
}

void MasterServer::OnExpunge(Message& m) {
  ExpungeReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  if (!broken_.ok()) return DeferError(m, broken_);
  auto scan = std::make_shared<ChunkScanState>();
  TrashScan(r.all || cfg_.trash_retention_s == 0, &scan->counts);
  const uint64_t term = term_;
  ChunkScan(kChunkScanRounds, scan, [this, req = m, scan, term] {
    if (term != term_ || mode_ != Mode::kMaster) return;
    DeferReply(req, scan->counts);
  });
}

}  // namespace gfs
