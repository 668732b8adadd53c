// MasterServer's damage tracking and in-place repair of damaged replicas
// (doc/architecture.md, "Damage and repair").
#include <algorithm>

#include "common/log.h"
#include "master/master_server.h"

namespace gfs {

namespace {
// Adds [lo, hi) to a sorted list of disjoint ranges, merging neighbours.
void MergeRange(std::vector<ByteRange>* v, uint64_t lo, uint64_t hi) {
  if (hi <= lo) return;
  std::vector<ByteRange> out;
  for (const ByteRange& r : *v) {
    if (r.offset + r.length < lo || hi < r.offset) {
      out.push_back(r);
    } else {
      lo = std::min(lo, r.offset);
      hi = std::max(hi, r.offset + r.length);
    }
  }
  out.push_back(ByteRange{lo, hi - lo});
  std::sort(out.begin(), out.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  *v = std::move(out);
}

// Ranges in both a and b (each sorted and disjoint).
std::vector<ByteRange> Intersect(const std::vector<ByteRange>& a, const std::vector<ByteRange>& b) {
  std::vector<ByteRange> out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const uint64_t lo = std::max(a[i].offset, b[j].offset);
    const uint64_t hi = std::min(a[i].offset + a[i].length, b[j].offset + b[j].length);
    if (lo < hi) out.push_back(ByteRange{lo, hi - lo});
    if (a[i].offset + a[i].length < b[j].offset + b[j].length) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}
}  // namespace

void MasterServer::MarkDamaged(uint64_t handle, int32_t rank,
                               const std::vector<ByteRange>& ranges) {
  if (meta_->FindChunk(handle) == nullptr) return;
  auto known = damaged_.find(handle);
  if (known == damaged_.end() || known->second.count(rank) == 0) {
    repair_backoff_.erase(handle);  // news: worth a repair again
  }
  auto& mine = damaged_[handle][rank];
  if (ranges.empty()) {
    // Somewhere: the whole chunk until a scan (verify, repair) says where.
    const ChunkInfo* ci = meta_->FindChunk(handle);
    (void)ci;
    MergeRange(&mine, 0, UINT64_MAX / 2);
  }
  for (const ByteRange& r : ranges)
    MergeRange(&mine, r.offset, r.offset + std::max<uint64_t>(r.length, 1));
  // The replica stays (it serves its good blocks and may hold the only good
  // copy of others). The chunk's lease ends here: the next one waits for the
  // repair, at a new version, so no mutation races it.
  leases_.erase(handle);
  stats_.counters["damaged_replicas_reported"]++;
}

void MasterServer::ClearDamaged(uint64_t handle, int32_t rank) {
  auto it = damaged_.find(handle);
  if (it == damaged_.end()) return;
  it->second.erase(rank);
  if (it->second.empty()) damaged_.erase(it);
}

std::vector<ByteRange> MasterServer::Unreadable(uint64_t handle) const {
  std::vector<int32_t> live = LiveReplicas(handle);
  auto bad = damaged_.find(handle);
  if (live.empty() || bad == damaged_.end()) return {};
  std::vector<ByteRange> common;
  bool first = true;
  for (int32_t r : live) {
    auto d = bad->second.find(r);
    if (d == bad->second.end()) return {};  // a good replica: everything readable
    common = first ? d->second : Intersect(common, d->second);
    first = false;
  }
  return common;
}

bool MasterServer::Repairable(uint64_t handle) const {
  // A source is any other live replica at the logged version: even one with
  // damage of its own may hold good copies of the blocks this one lacks.
  auto bad = damaged_.find(handle);
  if (bad == damaged_.end()) return false;
  std::vector<int32_t> live = LiveReplicas(handle);
  if (live.size() < 2) return false;
  for (int32_t r : live) {
    if (bad->second.count(r) != 0) return true;
  }
  return false;
}

bool MasterServer::StartRepair(uint64_t handle, uint64_t now) {
  const ChunkInfo* ci = meta_->FindChunk(handle);
  if (ci == nullptr || repairs_.count(handle) || clones_.count(handle) || prepares_.count(handle)) {
    return false;
  }
  auto back = repair_backoff_.find(handle);
  if (back != repair_backoff_.end() && now < back->second) return false;
  std::vector<int32_t> live = LiveReplicas(handle);
  // A new version on every live replica, with no primary: a mutation of the
  // old lease that is still on its way is refused everywhere, so nothing
  // lands while damaged blocks are rewritten from their peers.
  const uint64_t version = ci->version + 1;
  if (!Mutate(MetaOp::SetVersion(handle, version)).ok()) return false;
  RepairOp& op = repairs_[handle];
  op.serial = ++next_serial_;
  op.version = version;
  op.replicas = live;
  const uint64_t serial = op.serial;
  // The whole repair has four request timeouts; one that takes longer ends
  // as failed.
  op.timer =
      timers_.After(static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000 * 4,
                    [this, handle, serial, term = term_] {
                      auto it = repairs_.find(handle);
                      if (term != term_ || it == repairs_.end() || it->second.serial != serial) {
                        return;
                      }
                      it->second.timer = 0;
                      stats_.counters["repairs_timed_out"]++;
                      EndRepair(handle, false);
                    });
  for (const auto& [rank, ranges] : damaged_[handle]) {
    if (std::find(live.begin(), live.end(), rank) != live.end()) op.targets.push_back(rank);
  }
  leases_.erase(handle);
  const std::vector<int> dests(live.begin(), live.end());
  PrepareChunkReq req;
  req.handle = handle;
  req.version = version;
  // After the log sync that made the version durable. If that sync fails,
  // nothing is asked and the repair ends at its deadline.
  DeferStart(
      [this, dests, req, handle, serial] {
        calls_.FanOut(dests, req, cfg_.request_timeout_ms / 2, FanRule::All(),
                      AsMasterFan([this, handle, serial](const FanResult& fan) {
                        OnRepairPrepared(handle, serial, fan);
                      }));
      },
      nullptr);
  stats_.counters["repairs_started"]++;
  return true;
}

void MasterServer::OnRepairPrepared(uint64_t handle, uint64_t serial, const FanResult& fan) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end() || it->second.serial != serial) return;
  bool unanswered = false;
  for (size_t i = 0; i < fan.dests.size(); ++i) {
    const Result<Message>& r = fan.results[i];
    if (!r.ok()) {
      unanswered = true;
      continue;
    }
    if (r->status().ok()) continue;
    // This replica did not take the version: stale from now on.
    const int32_t rank = fan.dests[i];
    auto& loc = locations_[handle];
    auto pos = std::find(loc.begin(), loc.end(), rank);
    if (pos != loc.end()) loc.erase(pos);
    TouchLocation(handle);
    auto& t = it->second.targets;
    t.erase(std::remove(t.begin(), t.end(), rank), t.end());
    ClearDamaged(handle, rank);
  }
  // A replica that never answered may or may not hold the version: the
  // repair does not go on, and ends at its deadline.
  if (unanswered) return;
  if (!it->second.ok) return EndRepair(handle, false);
  SendNextRepair(handle);
}

void MasterServer::SendNextRepair(uint64_t handle) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end()) return;
  RepairOp& op = it->second;
  if (op.targets.empty()) return EndRepair(handle, true);
  const int32_t target = op.targets.front();
  RepairReq req;
  req.handle = handle;
  req.version = op.version;
  // Sources: the replicas that are not damaged first, then the others.
  std::vector<int32_t> good = GoodReplicas(handle);
  for (int32_t r : good) {
    if (r != target) req.sources.push_back(r);
  }
  for (int32_t r : op.replicas) {
    if (r != target && std::find(req.sources.begin(), req.sources.end(), r) == req.sources.end()) {
      req.sources.push_back(r);
    }
  }
  const uint64_t serial = op.serial;
  calls_.Call(target, req, cfg_.request_timeout_ms * 4,
              AsMaster([this, handle, serial](const Result<Message>& r) {
                OnRepairReply(handle, serial, r);
              }));
}

void MasterServer::OnRepairReply(uint64_t handle, uint64_t serial, const Result<Message>& r) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end() || it->second.serial != serial) return;
  // No answer: the repair ends at its deadline (which comes first).
  if (!r.ok()) return;
  RepairOp& op = it->second;
  const int32_t target = op.targets.front();
  op.targets.erase(op.targets.begin());
  RepairReply rep;
  const Message& m = *r;
  if (m.status().ok() && m.Decode(&rep).ok()) {
    stats_.counters["repair_bytes"] += rep.repaired_bytes;
    if (rep.still_damaged.empty()) {
      ClearDamaged(handle, target);
      stats_.counters["replicas_repaired"]++;
      GFS_LOG_INFO("master: chunk %016llx: the replica on rank %d is repaired (%llu bytes)",
                   static_cast<unsigned long long>(handle), target,
                   static_cast<unsigned long long>(rep.repaired_bytes));
    } else {
      damaged_[handle][target] = rep.still_damaged;
      stats_.counters["replicas_partly_repaired"]++;
      op.partial = true;
    }
  } else {
    op.ok = false;
    stats_.counters["repairs_failed"]++;
  }
  SendNextRepair(handle);
}

void MasterServer::EndRepair(uint64_t handle, bool ok) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end()) return;
  RepairOp op = std::move(it->second);
  repairs_.erase(it);
  if (op.timer != 0) timers_.Cancel(op.timer);
  if (!ok || damaged_.count(handle) != 0) {
    // Not (fully) repaired: not tried again for a while; meanwhile the lease
    // requests go ahead with the replicas as they are. Blocks no replica
    // holds good will not be found on the next try either: a minute, unless
    // new damage is reported meanwhile.
    const uint64_t wait = op.partial && ok
                              ? 60000000ull
                              : std::max<uint64_t>(5ull * cfg_.heartbeat_ms * 1000, 2000000);
    repair_backoff_[handle] = Now() + wait;
  } else {
    repair_backoff_.erase(handle);
  }
  for (Message& w : chunk_waiters_.Release(handle)) Dispatch(w);
}

void MasterServer::ScheduleRepairs(uint64_t now) {
  size_t running = repairs_.size();
  std::vector<uint64_t> handles;
  for (const auto& [h, reps] : damaged_) handles.push_back(h);
  for (uint64_t h : handles) {
    if (running >= 4) break;
    auto lease = leases_.find(h);
    if (lease != leases_.end() && lease->second.expiry_us > now) continue;
    if (Repairable(h) && StartRepair(h, now)) ++running;
  }
}

void MasterServer::OnCorrupt(Message& m) {
  CorruptReq r;
  if (!m.Decode(&r).ok()) return;
  auto known = damaged_.find(r.handle);
  if (meta_->FindChunk(r.handle) != nullptr &&
      (known == damaged_.end() || known->second.count(m.source) == 0)) {
    GFS_LOG_WARN(
        "master: chunk %016llx on rank %d failed its checksum; the replica is kept and repaired "
        "from a good copy",
        static_cast<unsigned long long>(r.handle), m.source);
  }
  MarkDamaged(r.handle, m.source, r.ranges);
  DeferReply(m, Empty{});
}

}  // namespace gfs
