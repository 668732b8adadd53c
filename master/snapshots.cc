// MasterServer's snapshots and copy-on-write (doc/architecture.md,
// "Snapshots").
//
// A snapshot of a file or tree first takes away every outstanding lease on
// the source's chunks (kRevokeLease to each primary, which answers once the
// mutations it ordered are done; a primary that does not answer is waited
// out until its lease has expired), holding new lease requests for those
// chunks meanwhile. Then one logged record (kSnapshot) makes the copy, whose
// files name the same chunk handles; MetaState counts the references.
//
// A chunk with more than one reference is never mutated in place: the next
// lease request for it (a write, an append, a truncation of that chunk)
// picks a new handle and orders every live replica to copy the chunk
// locally (kCopyChunk); once they answered, one record (kCopyOnWrite) makes
// the requesting file name the copy, and the lease request is served again,
// now for the copy (which the client learns from the lease answer). The
// other files keep the old chunk.
#include <algorithm>

#include "master/master_server.h"

namespace gfs {

namespace {

constexpr uint64_t kSnapshotRetryUs = 10000;  // a prepare or copy of a source chunk under way

}  // namespace

uint64_t MasterServer::NewHandle() {
  // A copy under way has a handle that is not logged yet: skip past it.
  const uint64_t h = std::max(meta_->NextHandle(), reserved_handle_);
  reserved_handle_ = h + 1;
  return h;
}

void MasterServer::OnSnapshot(Message& m) {
  SnapshotReq r;
  Status s = m.Decode(&r);
  if (s.ok()) s = meta_->Check(MetaOp::Snapshot(r.src, r.dst, meta_->NextFileId()));
  if (!s.ok()) return DeferError(m, s);
  const uint64_t job = ++next_snapshot_;
  SnapshotJob& j = snapshots_[job];
  j.req = m;
  j.src = r.src;
  j.dst = r.dst;
  ContinueSnapshot(job);
}

void MasterServer::ContinueSnapshot(uint64_t job) {
  auto it = snapshots_.find(job);
  if (it == snapshots_.end()) return;
  SnapshotJob& j = it->second;
  if (j.revokes > 0) return;  // the last answer comes back here
  const uint64_t now = Now();
  const uint64_t term = term_;
  auto again = [this, job, term](uint64_t delay_us) {
    timers_.After(delay_us, [this, job, term] {
      if (term == term_) ContinueSnapshot(job);
    });
  };
  if (now < j.not_before_us) return again(j.not_before_us - now);
  // The namespace may have changed while leases were revoked.
  Status s = meta_->Check(MetaOp::Snapshot(j.src, j.dst, meta_->NextFileId()));
  if (!s.ok()) return EndSnapshot(job, s);
  auto handles = meta_->ChunksUnder(j.src);
  if (!handles.ok()) return EndSnapshot(job, handles.status());
  bool busy = false;
  for (uint64_t h : *handles) {
    // From now on lease requests for the chunk wait for the snapshot.
    if (j.frozen.insert(h).second) frozen_[h]++;
    if (prepares_.count(h) != 0 || cows_.count(h) != 0) {
      busy = true;  // a lease (or a copy) is being made: look again shortly
      continue;
    }
    auto lease = leases_.find(h);
    if (lease == leases_.end()) continue;
    const int primary = lease->second.primary;
    const uint64_t expiry = lease->second.expiry_us;
    leases_.erase(lease);
    if (expiry <= now) continue;
    j.revokes++;
    stats_.counters[Counter::kLeasesRevoked]++;
    calls_.Call(primary, RevokeLeaseReq{h}, cfg_.request_timeout_ms,
                AsMaster([this, job, expiry](const Result<Message>& r) {
                  auto sj = snapshots_.find(job);
                  if (sj == snapshots_.end()) return;
                  if (!r.ok() || !r->status().ok()) {
                    // The primary may still be ordering mutations: wait until
                    // its lease is over by our clock (it counts a tenth short).
                    sj->second.not_before_us = std::max(sj->second.not_before_us, expiry);
                  }
                  if (--sj->second.revokes == 0) ContinueSnapshot(job);
                }));
  }
  if (j.revokes > 0) return;
  if (busy) return again(kSnapshotRetryUs);
  s = Mutate(MetaOp::Snapshot(j.src, j.dst, meta_->NextFileId()));
  if (s.ok()) stats_.counters[Counter::kSnapshotsTaken]++;
  EndSnapshot(job, s);
}

void MasterServer::EndSnapshot(uint64_t job, const Status& s) {
  auto it = snapshots_.find(job);
  SnapshotJob j = std::move(it->second);
  snapshots_.erase(it);
  if (s.ok()) {
    DeferReply(j.req, Empty{});
  } else {
    DeferError(j.req, s);
  }
  // Lease requests held for the source's chunks are served again: a chunk
  // now shared is copied first (StartCopyOnWrite).
  for (uint64_t h : j.frozen) {
    auto f = frozen_.find(h);
    if (f == frozen_.end() || --f->second > 0) continue;
    frozen_.erase(f);
    for (Message& w : chunk_waiters_.Release(h)) Dispatch(w);
  }
}

void MasterServer::StartCopyOnWrite(Message& lease_req, const FileInfo& f, uint32_t index,
                                    uint64_t handle) {
  std::vector<int32_t> replicas = LiveReplicas(handle);
  if (replicas.empty()) {
    return DeferError(lease_req, Status::Unavailable("no live replica of chunk " +
                                                     std::to_string(index) + " to copy"));
  }
  const ChunkInfo* c = meta_->FindChunk(handle);
  CowOp op;
  op.serial = ++next_serial_;
  op.file_id = f.id;
  op.index = index;
  op.to = NewHandle();
  op.version = c->version;
  const uint64_t serial = op.serial;
  CopyChunkReq req{handle, op.to, op.version};
  cows_[handle] = op;
  chunk_waiters_.Hold(handle, lease_req);
  stats_.counters[Counter::kCopiesOnWrite]++;
  // Nothing is logged before the copies exist, so the order leaves at once.
  // A copy is a local read and write of at most one chunk, then a sync.
  calls_.FanOut(
      std::vector<int>(replicas.begin(), replicas.end()), req, cfg_.request_timeout_ms * 4,
      FanRule::All(),
      AsMasterFan([this, handle, serial](const FanResult& fan) { OnCopied(handle, serial, fan); }));
}

void MasterServer::OnCopied(uint64_t handle, uint64_t serial, const FanResult& fan) {
  auto it = cows_.find(handle);
  if (it == cows_.end() || it->second.serial != serial) return;
  const CowOp op = it->second;
  cows_.erase(it);
  std::vector<int32_t> good, failed;
  for (size_t i = 0; i < fan.dests.size(); ++i) {
    const Result<Message>& r = fan.results[i];
    (r.ok() && r->status().ok() ? good : failed).push_back(fan.dests[i]);
  }
  // A replica that failed to copy may hold part of the copy: it goes.
  for (int32_t r : failed) servers_[r].to_delete.push_back(op.to);
  // The file still names the shared chunk at that index (it may have been
  // truncated, deleted or replaced meanwhile, or the other side deleted).
  const FileInfo* fi = meta_->FindFile(op.file_id);
  const bool still = fi != nullptr && op.index < fi->chunks.size() &&
                     fi->chunks[op.index] == handle && meta_->RefCount(handle) > 1;
  Status s = good.empty() ? Status::Unavailable("no replica of chunk " + std::to_string(handle) +
                                                " could be copied")
                          : Status::OK();
  if (s.ok() && still) s = Mutate(MetaOp::CopyOnWrite(op.file_id, op.index, op.to, op.version));
  if (!s.ok() || !still) {
    for (int32_t r : good) servers_[r].to_delete.push_back(op.to);
    std::vector<Message> waiters = chunk_waiters_.Release(handle);
    for (Message& w : waiters) {
      if (s.ok()) {
        Dispatch(w);  // served afresh for what the file is now
      } else {
        DeferError(w, s);
      }
    }
    return;
  }
  // The replicas that failed are left out; re-replication restores R.
  locations_[op.to] = good;
  TouchLocation(op.to);
  for (int32_t r : good) servers_[r].chunks++;
  for (Message& w : chunk_waiters_.Release(handle)) Dispatch(w);
}

void MasterServer::DropSnapshotWork() {
  // As for the other chunk operations of a deposed master: the requests
  // waiting for them are dropped unanswered (the clients ask the new one).
  for (const auto& [h, op] : cows_) chunk_waiters_.Release(h);
  for (const auto& [h, n] : frozen_) chunk_waiters_.Release(h);
  cows_.clear();
  frozen_.clear();
  snapshots_.clear();
}

}  // namespace gfs
