// MasterServer's re-replication: chunks with fewer good replicas than their
// file's replication are cloned to new chunkservers, most-missing first.
#include <algorithm>

#include "master/master_server.h"

namespace gfs {

void MasterServer::ScheduleClones(uint64_t now) {
  struct Need {
    uint64_t handle;
    uint32_t missing;
    std::vector<int32_t> good;
    uint32_t replication;
  };
  std::vector<Need> needs;
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    for (uint64_t h : f.chunks) {
      if (h == 0 || clones_.count(h) || prepares_.count(h) || repairs_.count(h)) continue;
      auto back = clone_backoff_.find(h);
      if (back != clone_backoff_.end() && now < back->second) continue;  // it just failed
      // A damaged replica is repaired in place, not replaced.
      if (damaged_.count(h) != 0 && Repairable(h)) continue;
      std::vector<int32_t> good = GoodReplicas(h);
      if (good.empty() || good.size() >= f.replication) continue;
      auto lease = leases_.find(h);
      if (lease != leases_.end() && lease->second.expiry_us > now) continue;
      needs.push_back(
          {h, static_cast<uint32_t>(f.replication - good.size()), std::move(good), f.replication});
    }
  });
  if (needs.empty()) return;
  // Two replicas missing before one.
  std::stable_sort(needs.begin(), needs.end(),
                   [](const Need& a, const Need& b) { return a.missing > b.missing; });
  std::set<int32_t> busy;  // one clone per target at a time (throttle)
  for (const auto& [h, op] : clones_) busy.insert(op.target);
  for (const Need& n : needs) {
    std::vector<ServerLoad> loads = Loads(0, busy);
    // The chunk's own replicas are never targets (excluded below), but their
    // racks and hosts count as used even while they are busy with another
    // clone (Loads marks busy servers not eligible).
    for (ServerLoad& l : loads) {
      if (std::find(n.good.begin(), n.good.end(), l.id) != n.good.end()) l.alive = true;
    }
    std::vector<int> exclude(n.good.begin(), n.good.end());
    auto loc = locations_.find(n.handle);
    if (loc != locations_.end())
      exclude.insert(exclude.end(), loc->second.begin(), loc->second.end());
    // A server whose replica is corrupt may take the new copy: the clone
    // replaces the bad replica.
    std::vector<int> target = placement_->ChooseNew(loads, 1, exclude, ++seed_);
    if (target.empty()) continue;
    if (!SecondRackOrWait(n.good, target[0], n.replication)) continue;
    const ChunkInfo* ci = meta_->FindChunk(n.handle);
    CloneOp op;
    op.serial = ++next_serial_;
    op.target = target[0];
    op.source = n.good[static_cast<size_t>(seed_ % n.good.size())];
    op.version = ci->version;
    const uint64_t handle = n.handle, serial = op.serial;
    calls_.Call(op.target, CloneReq{n.handle, op.version, op.source}, cfg_.request_timeout_ms * 4,
                AsMaster([this, handle, serial](const Result<Message>& r) {
                  OnCloneReply(handle, serial, r);
                }));
    busy.insert(op.target);
    auto& del = servers_[op.target].to_delete;
    del.erase(std::remove(del.begin(), del.end(), n.handle), del.end());
    clones_[n.handle] = std::move(op);
    stats_.counters[Counter::kClonesOrdered]++;
  }
}

bool MasterServer::SecondRackOrWait(const std::vector<int32_t>& good, int32_t target,
                                    uint32_t replication) const {
  if (replication < 2 || good.empty()) return true;
  auto rack = [&](int32_t r) {
    auto it = servers_.find(r);
    return topology_.RackOf(it == servers_.end() ? std::string() : it->second.host);
  };
  std::set<std::string> racks;
  for (int32_t r : good) racks.insert(rack(r));
  if (racks.size() >= 2 || racks.count(rack(target)) == 0) return true;
  // The target would leave the chunk on one rack: wait if a live server of
  // another rack, not holding the chunk, exists (it is busy now).
  for (const auto& [r, st] : servers_) {
    if (!st.alive || !st.registered || racks.count(rack(r)) != 0) continue;
    if (std::find(good.begin(), good.end(), r) == good.end()) return false;
  }
  return true;
}

void MasterServer::OnCloneReply(uint64_t handle, uint64_t serial, const Result<Message>& r) {
  auto it = clones_.find(handle);
  if (it == clones_.end() || it->second.serial != serial) return;
  CloneOp op = std::move(it->second);
  clones_.erase(it);
  if (!r.ok()) {
    // No answer in time: the target's copy, if any, is deleted; the chunk
    // is considered again at the next scan.
    servers_[op.target].to_delete.push_back(handle);
    stats_.counters[Counter::kClonesFailed]++;
    if (op.move_from >= 0) stats_.counters[Counter::kRebalanceMovesFailed]++;
    for (Message& w : chunk_waiters_.Release(handle)) Dispatch(w);
    return;
  }
  const Message& m = *r;
  const ChunkInfo* ci = meta_->FindChunk(handle);
  if (m.status().ok() && ci != nullptr && ci->version == op.version) {
    auto& loc = locations_[handle];
    if (std::find(loc.begin(), loc.end(), op.target) == loc.end()) loc.push_back(op.target);
    TouchLocation(handle);
    servers_[op.target].chunks++;
    ClearDamaged(handle, op.target);
    stats_.counters[Counter::kClonesDone]++;
    clone_backoff_.erase(handle);
    // A move: the source's replica goes now, before a lease request waiting
    // for the chunk is answered.
    if (op.move_from >= 0) FinishMove(handle, op);
  } else {
    if (op.move_from >= 0) stats_.counters[Counter::kRebalanceMovesFailed]++;
    if (ci == nullptr || m.status().ok()) servers_[op.target].to_delete.push_back(handle);
    stats_.counters[Counter::kClonesFailed]++;
    // Not ordered again at once (a target that keeps refusing would get
    // the order in a loop): after a heartbeat or so.
    clone_backoff_[handle] = Now() + std::max<uint64_t>(2ull * cfg_.heartbeat_ms * 1000, 500000);
  }
  for (Message& w : chunk_waiters_.Release(handle)) Dispatch(w);
  // The target is free again: order its next clone now, not at the next scan.
  ScheduleClones(Now());
}

}  // namespace gfs
