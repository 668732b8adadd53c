// MasterServer's chunkserver registry: registration (with the store identity
// check and the chunk report it carries), heartbeats, and the views of chunk
// locations built from them (live, good and readable replicas; placement
// load).
#include <algorithm>
#include <cstdio>

#include "common/log.h"
#include "master/master_server.h"

namespace gfs {

std::vector<int32_t> MasterServer::LiveReplicas(uint64_t handle) const {
  std::vector<int32_t> out;
  auto it = locations_.find(handle);
  if (it == locations_.end()) return out;
  for (int32_t r : it->second) {
    auto s = servers_.find(r);
    if (s != servers_.end() && s->second.alive) out.push_back(r);
  }
  return out;
}

ChunkLocation MasterServer::LocationOf(uint32_t index, uint64_t handle) const {
  ChunkLocation loc;
  loc.index = index;
  loc.handle = handle;
  if (handle != 0) {
    const ChunkInfo* c = meta_->FindChunk(handle);
    loc.version = c ? c->version : 0;
    loc.replicas = ReadableReplicas(handle);
  }
  return loc;
}

void MasterServer::RefuseServer(const Message& m, const std::string& dir_name, const Status& why) {
  // Registered (the job does not wait for it) but never alive: it serves
  // nothing and is told nothing to delete.
  stats_.counters[Counter::kChunkserversRefused]++;
  ServerState& st = servers_[m.source];
  st.rank = m.source;
  st.dir_name = dir_name;
  st.registered = true;
  st.alive = false;
  DeferError(m, why);
}

void MasterServer::OnRegister(Message& m) {
  RegisterReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  if ((fresh_ || (r.store_id == 0 && !upgraded_)) && !r.chunks.empty()) {
    // No metadata here, but the chunkserver holds chunks: the master's
    // directory was lost or is not this store's. Or chunks of no known store
    // beside a store made in an earlier job (a directory of the previous
    // format joins only the master upgraded with it). Start nothing (a new
    // store) and delete nothing.
    if (!fresh_) {
      GFS_LOG_WARN(
          "master: %s holds %zu chunks of no store (no STORE file): refused, its chunks are left "
          "alone",
          r.dir_name.c_str(), r.chunks.size());
      return RefuseServer(m, r.dir_name,
                          Status(Code::kWrongStore, r.dir_name + " holds chunks of no store"));
    }
    if (refusal_.ok()) {
      char sid[40] = "";
      if (r.store_id != 0) {
        std::snprintf(sid, sizeof sid, " of store %016llx",
                      static_cast<unsigned long long>(r.store_id));
      }
      refusal_ = Status(Code::kWrongStore,
                        "refusing to start: " + dir_ + " holds no master metadata, but " +
                            r.dir_name + " holds " + std::to_string(r.chunks.size()) + " chunks" +
                            sid + "; 'gfs format -f' discards them and makes a new store");
    }
    return RefuseServer(m, r.dir_name, refusal_);
  }
  if (!fresh_ && r.store_id != 0 && r.store_id != store_id_ && !r.chunks.empty()) {
    // A chunkserver directory of another store: refused, its chunks left alone.
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "%s belongs to store %016llx; this master's store is %016llx: refused, its "
                  "chunks are left alone",
                  r.dir_name.c_str(), static_cast<unsigned long long>(r.store_id),
                  static_cast<unsigned long long>(store_id_));
    GFS_LOG_WARN("master: %s", msg);
    return RefuseServer(m, r.dir_name, Status(Code::kWrongStore, msg));
  }
  ServerState& st = servers_[m.source];
  st.rank = m.source;
  st.id = r.server_id;
  st.dir_name = r.dir_name;
  st.host = r.host;
  st.capacity = r.capacity;
  st.used = r.used;
  st.chunks = static_cast<uint32_t>(r.chunks.size());
  st.registered = true;
  st.alive = true;
  st.last_seen_us = Now();
  RegisterReply rep;
  rep.store_id = store_id_;
  for (const ChunkReport& c : r.chunks) {
    const ChunkInfo* info = meta_->FindChunk(c.handle);
    if (info == nullptr) {
      rep.delete_handles.push_back(c.handle);  // orphan
      stats_.counters[Counter::kOrphanReplicas]++;
      continue;
    }
    if (c.version < info->version) {
      // Behind the logged version: stale if a current replica exists, but
      // the master may also have died between logging a new version and
      // the replicas recording it. Never served; decided by ResolveBehind.
      auto& b = behind_[c.handle];
      b.erase(std::remove_if(
                  b.begin(), b.end(),
                  [&](const std::pair<int32_t, uint64_t>& e) { return e.first == m.source; }),
              b.end());
      b.push_back({m.source, c.version});
      stats_.counters[Counter::kStaleReplicas]++;
      stale_seen_[c.handle]++;
      continue;
    }
    if (c.version > info->version) {
      // The master failed while granting: the replica's version is current.
      if (!Mutate(MetaOp::SetVersion(c.handle, c.version)).ok()) continue;
      // Replicas registered earlier at the old version are now stale.
      auto& loc = locations_[c.handle];
      for (int32_t old : loc) servers_[old].to_delete.push_back(c.handle);
      loc.clear();
    }
    TouchLocation(c.handle);
    auto& loc = locations_[c.handle];
    if (std::find(loc.begin(), loc.end(), m.source) == loc.end()) loc.push_back(m.source);
    if (!c.damaged.empty()) {
      MarkDamaged(c.handle, m.source, c.damaged);
    } else {
      ClearDamaged(c.handle, m.source);  // a re-registration after a repair elsewhere
    }
    if (!took_over_ && !lengths_resolved_) reported_len_[c.handle][m.source] = c.length;
  }
  DeferReply(m, rep);
  if (serving_) ResolveBehind();
}

void MasterServer::OnHeartbeat(Message& m) {
  HeartbeatReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  ServerState& st = servers_[m.source];
  if (!st.registered) return DeferError(m, Status::Unavailable("register first"));
  st.used = r.used;
  st.capacity = r.capacity;
  st.chunks = r.num_chunks;
  st.last_seen_us = Now();
  st.alive = true;
  NoteEndedClients(m.source, r.ended_clients);
  HeartbeatReply rep;
  rep.lease_ms = cfg_.lease_seconds * 1000;
  const uint64_t now = Now();
  for (uint64_t h : r.extend_leases) {
    auto it = leases_.find(h);
    if (it != leases_.end() && it->second.primary == m.source && it->second.expiry_us > now) {
      it->second.expiry_us = now + static_cast<uint64_t>(cfg_.lease_seconds) * 1000000;
      rep.extended.push_back(h);
    }
  }
  // While a chunk scan runs, its held-chunks requests carry the deletes, so
  // that their replies confirm them (master/trash.cc).
  if (now >= scan_holds_deletes_until_us_) rep.delete_handles.swap(st.to_delete);
  rep.store_id = store_id_;
  DeferReply(m, rep);
}

std::vector<ServerLoad> MasterServer::Loads(uint64_t room, const std::set<int32_t>& busy) const {
  std::vector<ServerLoad> loads;
  for (const auto& [rank, st] : servers_) {
    ServerLoad l;
    l.id = rank;
    l.host = st.host;
    l.rack = topology_.RackOf(st.host);
    l.used_bytes = st.used;
    l.capacity_bytes = st.capacity;
    l.chunks = st.chunks;
    l.recent_creations = st.recent_creations;
    l.alive = st.alive && st.registered && !busy.count(rank) &&
              (st.capacity == 0 || st.capacity >= st.used + room);
    loads.push_back(l);
  }
  return loads;
}

std::vector<int32_t> MasterServer::GoodReplicas(uint64_t handle) const {
  std::vector<int32_t> live = LiveReplicas(handle);
  auto bad = damaged_.find(handle);
  if (bad == damaged_.end()) return live;
  std::vector<int32_t> out;
  for (int32_t r : live) {
    if (!bad->second.count(r)) out.push_back(r);
  }
  return out;
}

std::vector<int32_t> MasterServer::ReadableReplicas(uint64_t handle) const {
  std::vector<int32_t> good = GoodReplicas(handle);
  return good.empty() ? LiveReplicas(handle) : good;
}

}  // namespace gfs
