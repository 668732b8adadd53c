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
        placement_->ChooseNew(loads, static_cast<int>(f->replication), {}, ++seed_);
    if (chosen.size() < f->replication) {
      return DeferError(m,
                        Status::Unavailable("only " + std::to_string(chosen.size()) +
                                            " chunkservers can take a new chunk; the file needs " +
                                            std::to_string(f->replication)));
    }
    handle = NewHandle();
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
    stats_.counters[Counter::kChunksCreated]++;
    return StartPrepare(m, r.index, handle, 1, true,
                        std::vector<int32_t>(chosen.begin(), chosen.end()));
  }
  if (prepares_.count(handle) != 0) {
    chunk_waiters_.Hold(handle, m);  // answered with the lease being prepared
    return;
  }
  if (clones_.count(handle) != 0) {
    chunk_waiters_.Hold(handle, m);  // served again when the clone ends
    return;
  }
  if (frozen_.count(handle) != 0 || cows_.count(handle) != 0) {
    chunk_waiters_.Hold(handle, m);  // served again when the snapshot or copy ends
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
    chunk_waiters_.Hold(handle, m);  // served again when the repair ends
    return;
  }
  // A chunk shared with a snapshot is copied before any mutation of it.
  if (meta_->RefCount(handle) > 1) return StartCopyOnWrite(m, *f, r.index, handle);
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
      std::vector<int> chosen = placement_->ChooseNew(
          Loads(f->chunk_size, {}), static_cast<int>(f->replication), {}, ++seed_);
      if (chosen.size() >= f->replication) {
        const uint64_t version = c->version + 1;
        s = Mutate(MetaOp::SetVersion(handle, version));
        if (!s.ok()) return DeferError(m, s);
        stats_.counters[Counter::kChunksRecreated]++;
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
  Prepare& p = prepares_[handle];
  p.serial = ++next_serial_;
  p.index = index;
  p.handle = handle;
  p.version = version;
  p.primary = replicas.front();
  p.replicas = std::move(replicas);
  chunk_waiters_.Hold(handle, lease_req);
  leases_.erase(handle);
  const std::vector<int> dests(p.replicas.begin(), p.replicas.end());
  const int primary = p.primary;
  const uint64_t serial = p.serial;
  // Ordered after the log sync that made the version durable. A replica
  // that does not answer in time counts as failed.
  DeferStart(
      [=, this] {
        calls_.FanOutEach(
            dests,
            [&](int r) {
              PrepareChunkReq req;
              req.handle = handle;
              req.version = version;
              req.create = create;
              req.primary = r == primary;
              req.lease_ms = cfg_.lease_seconds * 1000;
              return req;
            },
            cfg_.request_timeout_ms / 2, FanRule::All(),
            AsMasterFan(
                [this, handle, serial](const FanResult& fan) { OnPrepared(handle, serial, fan); }));
      },
      [this, handle, serial, dests] {
        // The version never became durable: no replica was asked.
        auto it = prepares_.find(handle);
        if (it != prepares_.end() && it->second.serial == serial) {
          FinishPrepare(handle, std::vector<int32_t>(dests.begin(), dests.end()));
        }
      });
}

void MasterServer::OnPrepared(uint64_t handle, uint64_t serial, const FanResult& fan) {
  auto it = prepares_.find(handle);
  if (it == prepares_.end() || it->second.serial != serial) return;
  std::vector<int32_t> failed;
  for (size_t i = 0; i < fan.dests.size(); ++i) {
    const Result<Message>& r = fan.results[i];
    if (!r.ok() || !r->status().ok()) failed.push_back(fan.dests[i]);
  }
  FinishPrepare(handle, failed);
}

void MasterServer::FinishPrepare(uint64_t handle, const std::vector<int32_t>& failed) {
  auto it = prepares_.find(handle);
  const Prepare p = std::move(it->second);
  prepares_.erase(it);
  // Replicas that did not record the version are stale from now on.
  std::vector<int32_t> good;
  for (int32_t r : p.replicas) {
    if (std::find(failed.begin(), failed.end(), r) == failed.end()) good.push_back(r);
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
  std::vector<Message> waiters = chunk_waiters_.Release(p.handle);
  if (!failed.empty() || !primary_ok) {
    // Simplest safe answer: the client retries and gets a fresh lease on the
    // replicas that are left.
    for (Message& w : waiters) {
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
    for (Message& w : waiters) DeferReply(w, rep);
  }
}

}  // namespace gfs
