// MasterServer's leases: granting a lease on a chunk (allocating the chunk
// when it is new), and preparing it: every replica records the new version
// before the lease is given out.
#include <algorithm>

#include "master/master_server.h"

namespace gfs {

void MasterServer::OnLease(Message& m) {
  LeaseReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  auto f = meta_->StatFile(r.path);
  if (!f.ok()) return DeferError(m, f.status());
  if (r.file_id != 0 && r.file_id != f->id) {
    return DeferError(m, Status::NotFound(r.path + " was replaced by another file"));
  }
  if (r.append) {
    // Record append goes to the file's last chunk (the first, for an empty file).
    r.index = f->chunks.empty() ? 0 : static_cast<uint32_t>(f->chunks.size() - 1);
  }
  if (r.index >= kMaxChunksPerFile)
    return DeferError(m, Status::InvalidArgument("chunk index too large"));
  const uint64_t now = Now();
  uint64_t handle = r.index < f->chunks.size() ? f->chunks[r.index] : 0;
  if (handle == 0) {
    // Allocate: place R replicas, log the chunk, create it on each replica.
    std::vector<ServerLoad> loads = Loads(f->chunk_size, {});
    std::vector<int> chosen =
        placement_.ChooseNew(loads, static_cast<int>(f->replication), {}, ++seed_);
    if (chosen.size() < f->replication) {
      return DeferError(m,
                        Status::Unavailable("only " + std::to_string(chosen.size()) +
                                            " chunkservers can take a new chunk; the file needs " +
                                            std::to_string(f->replication)));
    }
    handle = meta_->NextHandle();
    s = Mutate(MetaOp::AddChunk(f->id, r.index, handle, 1, NowMs()));
    if (!s.ok()) return DeferError(m, s);
    for (int c : chosen) {
      servers_[c].recent_creations++;
      servers_[c].chunks++;
      // Count the new chunk as full until the next heartbeat says better:
      // otherwise chunks placed before then all see the old use and can
      // land on a server that has room for only one of them.
      servers_[c].used += f->chunk_size;
    }
    stats_.counters["chunks_created"]++;
    return StartPrepare(m, r.index, handle, 1, true,
                        std::vector<int32_t>(chosen.begin(), chosen.end()));
  }
  auto pending = prepare_by_handle_.find(handle);
  if (pending != prepare_by_handle_.end()) {
    prepares_[pending->second].waiters.push_back(m);
    return;
  }
  auto cloning = clones_.find(handle);
  if (cloning != clones_.end()) {
    cloning->second.waiters.push_back(m);  // answered when the clone ends
    return;
  }
  // A damaged replica is repaired before the chunk is mutated again (a
  // partial overwrite of a damaged block could not be applied there).
  auto repairing = repairs_.find(handle);
  if (repairing == repairs_.end() && damaged_.count(handle) != 0 && Repairable(handle) &&
      StartRepair(handle, now)) {
    repairing = repairs_.find(handle);
  }
  if (repairing != repairs_.end()) {
    repairing->second.waiters.push_back(m);  // answered when the repair ends
    return;
  }
  std::vector<int32_t> replicas = LiveReplicas(handle);
  const ChunkInfo* c = meta_->FindChunk(handle);
  auto lease = leases_.find(handle);
  // A replica that died leaves the chain under a new version, so its copy
  // (which misses what follows) is stale when its directory is back.
  // find, not operator[]: an entry, even an empty one, says some chunkserver
  // has held this chunk (the re-creation below must not happen then).
  auto known = locations_.find(handle);
  const bool lost = known != locations_.end() && replicas.size() < known->second.size();
  if (lost) known->second = replicas;
  if (!lost && lease != leases_.end() && lease->second.expiry_us > now &&
      std::find(replicas.begin(), replicas.end(), lease->second.primary) != replicas.end()) {
    LeaseReply rep;
    rep.index = r.index;
    rep.handle = handle;
    rep.version = c->version;
    rep.primary = lease->second.primary;
    rep.replicas = replicas;
    std::stable_partition(rep.replicas.begin(), rep.replicas.end(),
                          [&](int32_t x) { return x == rep.primary; });
    rep.lease_ms = static_cast<uint32_t>((lease->second.expiry_us - now) / 1000);
    return DeferReply(m, rep);
  }
  if (replicas.empty()) {
    // A chunk logged by a master that died before any chunkserver created
    // it: every chunkserver is registered and alive, none reported it (not
    // even behind), and it lies wholly past the file's length, so it holds
    // no acknowledged byte (or, after a takeover, the old master never
    // reported a replica of it). Create it afresh, at a new version.
    const bool everyone = std::all_of(cs_ranks_.begin(), cs_ranks_.end(), [&](int cr) {
      auto it = servers_.find(cr);
      return it != servers_.end() && it->second.registered && it->second.alive;
    });
    const bool past_end = static_cast<uint64_t>(r.index) * f->chunk_size >= f->length;
    const bool never_located = took_over_ && !located_at_takeover_.count(handle);
    if (everyone && (past_end || never_located) && !behind_.count(handle) &&
        known == locations_.end()) {
      std::vector<int> chosen = placement_.ChooseNew(Loads(f->chunk_size, {}),
                                                     static_cast<int>(f->replication), {}, ++seed_);
      if (chosen.size() >= f->replication) {
        const uint64_t version = c->version + 1;
        s = Mutate(MetaOp::SetVersion(handle, version));
        if (!s.ok()) return DeferError(m, s);
        stats_.counters["chunks_recreated"]++;
        return StartPrepare(m, r.index, handle, version, true,
                            std::vector<int32_t>(chosen.begin(), chosen.end()));
      }
    }
    return DeferError(m, Status::Unavailable("no live replica of chunk " + std::to_string(r.index) +
                                             " of " + r.path));
  }
  // A new lease: bump the version so replicas that miss it become stale.
  uint64_t version = c->version + 1;
  s = Mutate(MetaOp::SetVersion(handle, version));
  if (!s.ok()) return DeferError(m, s);
  StartPrepare(m, r.index, handle, version, false, std::move(replicas));
}

void MasterServer::StartPrepare(Message& lease_req, uint32_t index, uint64_t handle,
                                uint64_t version, bool create, std::vector<int32_t> replicas) {
  uint64_t key = ++next_id_;
  Prepare& p = prepares_[key];
  p.index = index;
  p.handle = handle;
  p.version = version;
  p.primary = replicas.front();
  p.replicas = std::move(replicas);
  p.waiting = static_cast<int>(p.replicas.size());
  p.deadline_us = Now() + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000 / 2;
  p.waiters.push_back(lease_req);
  prepare_by_handle_[handle] = key;
  leases_.erase(handle);
  for (int32_t r : p.replicas) {
    PrepareChunkReq req;
    req.handle = handle;
    req.version = version;
    req.create = create;
    req.primary = r == p.primary;
    req.lease_ms = cfg_.lease_seconds * 1000;
    Header h = OrderHeader(MsgType::kPrepareChunk, cfg_.request_timeout_ms / 2);
    prepare_req_[h.id] = key;
    // Ordered after the log sync that made the version durable.
    Defer(r, EncodeMessage(h, req));
  }
}

void MasterServer::OnPrepareReply(Message& m) {
  auto rv = revive_req_.find(m.h.id);
  if (rv != revive_req_.end()) {
    const auto [handle, rank] = rv->second;
    revive_req_.erase(rv);
    if (m.status().ok() && meta_->FindChunk(handle) != nullptr) {
      auto& loc = locations_[handle];
      if (std::find(loc.begin(), loc.end(), rank) == loc.end()) loc.push_back(rank);
      TouchLocation(handle);
    }
    DispatchHeld();
    return;
  }
  auto rq = repair_req_.find(m.h.id);
  if (rq != repair_req_.end()) {
    const uint64_t handle = rq->second;
    repair_req_.erase(rq);
    auto op = repairs_.find(handle);
    if (op == repairs_.end()) return;
    if (!m.status().ok()) {
      // This replica did not take the version: stale from now on.
      auto& loc = locations_[handle];
      auto pos = std::find(loc.begin(), loc.end(), m.source);
      if (pos != loc.end()) loc.erase(pos);
      TouchLocation(handle);
      auto& t = op->second.targets;
      t.erase(std::remove(t.begin(), t.end(), m.source), t.end());
      ClearDamaged(handle, m.source);
    }
    --op->second.waiting;
    OnRepairPrepared(handle);
    return;
  }
  auto it = prepare_req_.find(m.h.id);
  if (it == prepare_req_.end()) return;
  uint64_t key = it->second;
  prepare_req_.erase(it);
  auto p = prepares_.find(key);
  if (p == prepares_.end()) return;
  p->second.answered.push_back(m.source);
  if (!m.status().ok()) p->second.failed.push_back(m.source);
  if (--p->second.waiting == 0) FinishPrepare(key);
}

void MasterServer::FinishPrepare(uint64_t key) {
  auto it = prepares_.find(key);
  Prepare& p = it->second;
  prepare_by_handle_.erase(p.handle);
  // Replicas that did not record the version are stale from now on.
  std::vector<int32_t> good;
  for (int32_t r : p.replicas) {
    if (std::find(p.failed.begin(), p.failed.end(), r) == p.failed.end()) good.push_back(r);
  }
  auto& loc = locations_[p.handle];
  TouchLocation(p.handle);
  for (int32_t r : p.replicas) {
    bool ok = std::find(good.begin(), good.end(), r) != good.end();
    auto pos = std::find(loc.begin(), loc.end(), r);
    if (ok && pos == loc.end()) loc.push_back(r);
    if (!ok && pos != loc.end()) loc.erase(pos);
  }
  const bool primary_ok = std::find(good.begin(), good.end(), p.primary) != good.end();
  if (!p.failed.empty() || !primary_ok) {
    // Simplest safe answer: the client retries and gets a fresh lease on the
    // replicas that are left.
    for (Message& w : p.waiters) {
      DeferError(w, Status::Unavailable("a replica did not take chunk version " +
                                        std::to_string(p.version)));
    }
  } else {
    uint64_t lease_us = static_cast<uint64_t>(cfg_.lease_seconds) * 1000000;
    leases_[p.handle] = Lease{p.primary, Now() + lease_us};
    LeaseReply rep;
    rep.index = p.index;
    rep.handle = p.handle;
    rep.version = p.version;
    rep.primary = p.primary;
    rep.replicas = good;
    rep.lease_ms = cfg_.lease_seconds * 1000;
    for (Message& w : p.waiters) DeferReply(w, rep);
  }
  prepares_.erase(it);
}

}  // namespace gfs
