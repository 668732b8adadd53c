// MasterServer's replication changes and rebalancing:
//  - `gfs setrep` (OnSetReplication): a logged op sets the replication of a
//    file or of every file of a tree; re-replication (rereplication.cc) adds
//    the missing replicas, ScheduleTrims removes the extra ones;
//  - OnReplicationState: how far the files are from their replication, and
//    the chunkservers' bytes of chunks (`gfs setrep -w`, `gfs balance`);
//  - ScheduleRebalance: when a live chunkserver's bytes of chunks differ
//    from the mean by more than --rebalance-threshold, replicas move from
//    fuller servers to emptier ones: a clone to the target first (the clone
//    path, which answers once the copy is complete and synced), then the
//    source's copy is removed (FinishMove), so a chunk never has fewer than
//    its replication of complete replicas.
#include <algorithm>
#include <cmath>

#include "common/log.h"
#include "master/master_server.h"

namespace gfs {

namespace {

// Bytes of chunk `index` of a file: its share of the file's length.
uint64_t ChunkLength(const FileInfo& f, size_t index) {
  const uint64_t start = static_cast<uint64_t>(index) * f.chunk_size;
  if (f.length <= start) return 0;
  return std::min<uint64_t>(f.chunk_size, f.length - start);
}

bool UnderPath(const std::string& p, const std::string& norm) {
  if (norm == "/") return true;
  return p == norm ||
         (p.size() > norm.size() && p.compare(0, norm.size(), norm) == 0 && p[norm.size()] == '/');
}

}  // namespace

void MasterServer::OnSetReplication(Message& m) {
  SetReplicationReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  if (r.replication == 0 || r.replication > cs_ranks_.size()) {
    return DeferError(m, Status::InvalidArgument("replication " + std::to_string(r.replication) +
                                                 " needs as many chunkservers (the job has " +
                                                 std::to_string(cs_ranks_.size()) + ")"));
  }
  std::string norm;
  s = NormalizePath(r.path, &norm);
  if (s.ok()) s = Mutate(MetaOp::SetReplication(norm, r.replication));
  if (!s.ok()) return DeferError(m, s);
  SetReplicationReply rep;
  meta_->ForEachFile([&](const std::string& p, const FileInfo&) {
    if (UnderPath(p, norm)) ++rep.files;
  });
  DeferReply(m, rep);
  // Extra replicas go at once; missing ones are cloned by the next scan.
  ScheduleTrims(Now());
}

std::map<int32_t, uint64_t> MasterServer::ChunkBytes(
    std::map<int32_t, std::vector<MovableChunk>>* by_server) const {
  std::map<int32_t, uint64_t> bytes;
  for (const auto& [rank, st] : servers_) {
    if (st.alive && st.registered) bytes[rank] = 0;
  }
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    for (size_t i = 0; i < f.chunks.size(); ++i) {
      const uint64_t h = f.chunks[i];
      if (h == 0) continue;
      const uint64_t len = ChunkLength(f, i);
      for (int32_t r : LiveReplicas(h)) {
        auto b = bytes.find(r);
        if (b == bytes.end()) continue;
        b->second += len;
        if (by_server != nullptr) (*by_server)[r].push_back({h, len, f.replication});
      }
    }
  });
  return bytes;
}

bool MasterServer::Balanced(const std::map<int32_t, uint64_t>& bytes) const {
  if (cfg_.rebalance_threshold <= 0 || bytes.size() < 2) return true;
  double sum = 0;
  for (const auto& [rank, b] : bytes) sum += static_cast<double>(b);
  const double mean = sum / static_cast<double>(bytes.size());
  if (mean <= 0) return true;
  for (const auto& [rank, b] : bytes) {
    if (std::fabs(static_cast<double>(b) - mean) > cfg_.rebalance_threshold * mean) return false;
  }
  return true;
}

void MasterServer::OnReplicationState(Message& m) {
  ReplicationStateReq r;
  Status s = m.Decode(&r);
  std::string norm;
  if (s.ok()) s = NormalizePath(r.path, &norm);
  if (s.ok() && !meta_->Exists(norm)) s = Status::NotFound(norm);
  if (!s.ok()) return DeferError(m, s);
  ReplicationStateReply rep;
  // Replicas removed but not yet told to their live chunkserver (the next
  // heartbeat reply carries it): until then the chunk is not settled, as a
  // job ending now would find the replica again in the next.
  std::set<uint64_t> undelivered;
  for (const auto& [rank, st] : servers_) {
    if (st.alive) undelivered.insert(st.to_delete.begin(), st.to_delete.end());
  }
  bool moving = false;
  for (const auto& [h, op] : clones_) moving = moving || op.move_from >= 0;
  meta_->ForEachFile([&](const std::string& p, const FileInfo& f) {
    if (!UnderPath(p, norm)) return;
    for (uint64_t h : f.chunks) {
      if (h == 0) continue;
      ++rep.chunks;
      const size_t good = GoodReplicas(h).size();
      if (good != f.replication || clones_.count(h) != 0 || undelivered.count(h) != 0) {
        ++rep.off_target;
      }
      if (good < f.replication) ++rep.under;
    }
  });
  std::map<int32_t, uint64_t> bytes = ChunkBytes(nullptr);
  for (const auto& [rank, b] : bytes) rep.servers.push_back(ServerBytes{rank, b});
  // Balanced once no move is under way and every removal was handed out.
  rep.balanced = Balanced(bytes) && !moving && undelivered.empty();
  rep.moves_done = stats_.counters[Counter::kRebalanceMoves];
  DeferReply(m, rep);
}

void MasterServer::DropReplica(uint64_t handle, int32_t rank) {
  auto loc = locations_.find(handle);
  if (loc != locations_.end()) {
    auto& v = loc->second;
    v.erase(std::remove(v.begin(), v.end(), rank), v.end());
  }
  TouchLocation(handle);
  ServerState& st = servers_[rank];
  if (st.chunks > 0) st.chunks--;
  st.to_delete.push_back(handle);
}

std::vector<ServerLoad> MasterServer::LoadsOf(const std::vector<int32_t>& ranks) const {
  std::vector<ServerLoad> out;
  for (int32_t r : ranks) {
    auto it = servers_.find(r);
    if (it == servers_.end()) continue;
    ServerLoad l;
    l.id = r;
    l.host = it->second.host;
    l.rack = topology_.RackOf(it->second.host);
    l.used_bytes = it->second.used;
    l.capacity_bytes = it->second.capacity;
    l.chunks = it->second.chunks;
    l.alive = it->second.alive;
    out.push_back(l);
  }
  return out;
}

void MasterServer::ScheduleTrims(uint64_t now) {
  // Bytes of chunks per server, counted once the first chunk with extras
  // is found (most scans find none) and kept up to date as replicas go: the
  // fullest server loses a replica first.
  std::map<int32_t, uint64_t> bytes;
  bool counted = false;
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    for (size_t i = 0; i < f.chunks.size(); ++i) {
      const uint64_t h = f.chunks[i];
      if (h == 0 || clones_.count(h) || prepares_.count(h) || repairs_.count(h)) continue;
      auto lease = leases_.find(h);
      if (lease != leases_.end() && lease->second.expiry_us > now) continue;  // being written
      // Only good (live, current, undamaged) replicas count: the chunk keeps
      // `replication` of them.
      std::vector<int32_t> good = GoodReplicas(h);
      if (good.size() <= f.replication) continue;
      if (!counted) {
        bytes = ChunkBytes(nullptr);
        counted = true;
      }
      std::vector<ServerLoad> loads = LoadsOf(good);
      for (ServerLoad& l : loads) l.used_bytes = bytes[l.id];
      const int extra = static_cast<int>(good.size() - f.replication);
      for (int r : ChooseExtraReplicas(loads, extra)) {
        DropReplica(h, r);
        bytes[r] -= std::min(bytes[r], ChunkLength(f, i));
        stats_.counters[Counter::kReplicasTrimmed]++;
      }
    }
  });
}

void MasterServer::ScheduleRebalance(uint64_t now) {
  if (cfg_.rebalance_threshold <= 0 || cfg_.rebalance_moves == 0 || shutting_down_) return;
  if (now < next_rebalance_us_) return;
  // One round a second, at most rebalance_moves moves started per round.
  next_rebalance_us_ = now + 1000000;
  std::map<int32_t, std::vector<MovableChunk>> held;
  std::map<int32_t, uint64_t> bytes = ChunkBytes(&held);
  if (Balanced(bytes)) return;
  double sum = 0;
  for (const auto& [rank, b] : bytes) sum += static_cast<double>(b);
  const double mean = sum / static_cast<double>(bytes.size());

  // One clone at a time per server, as a target (re-replication's rule) and
  // as the source of a move.
  std::set<int32_t> busy;
  for (const auto& [h, op] : clones_) {
    busy.insert(op.target);
    if (op.move_from >= 0) busy.insert(op.move_from);
  }
  std::set<std::string> live_racks, live_hosts;
  for (const auto& [rank, b] : bytes) {
    live_racks.insert(topology_.RackOf(servers_[rank].host));
    live_hosts.insert(servers_[rank].host);
  }

  uint32_t budget = cfg_.rebalance_moves;
  while (budget > 0) {
    // Fullest source above the mean, emptiest target below it.
    std::vector<int32_t> order;
    for (const auto& [rank, b] : bytes) order.push_back(rank);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return bytes[a] != bytes[b] ? bytes[a] > bytes[b] : a < b;
    });
    bool started = false;
    for (int32_t src : order) {
      if (started) break;
      if (static_cast<double>(bytes[src]) <= mean) break;
      if (busy.count(src)) continue;
      for (auto t = order.rbegin(); t != order.rend() && !started; ++t) {
        const int32_t dst = *t;
        if (static_cast<double>(bytes[dst]) >= mean) break;
        if (busy.count(dst) || dst == src) continue;
        const ServerState& ds = servers_[dst];
        for (const MovableChunk& c : held[src]) {
          // The move must narrow the gap between the two servers.
          if (c.bytes == 0 || c.bytes >= bytes[src] - bytes[dst]) continue;
          if (ds.capacity != 0 && ds.capacity < ds.used + c.bytes) continue;
          const uint64_t h = c.handle;
          if (clones_.count(h) || prepares_.count(h) || repairs_.count(h)) continue;
          if (damaged_.count(h)) continue;
          auto back = clone_backoff_.find(h);
          if (back != clone_backoff_.end() && now < back->second) continue;
          auto lease = leases_.find(h);
          if (lease != leases_.end() && lease->second.expiry_us > now) continue;
          // Only a chunk at exactly its replication moves (re-replication
          // and trims deal with the others).
          std::vector<int32_t> good = GoodReplicas(h);
          if (good.size() != c.replication) continue;
          if (std::find(good.begin(), good.end(), src) == good.end()) continue;
          auto loc = locations_.find(h);
          if (loc != locations_.end() &&
              std::find(loc->second.begin(), loc->second.end(), dst) != loc->second.end()) {
            continue;
          }
          // Placement rules for the set after the move: distinct hosts, and
          // two racks when the live servers span two (and R >= 2).
          std::vector<int32_t> after;
          for (int32_t r : good) {
            if (r != src) after.push_back(r);
          }
          after.push_back(dst);
          if (!SpreadOk(LoadsOf(after), static_cast<int>(live_racks.size()),
                        static_cast<int>(live_hosts.size()))) {
            continue;
          }
          // Start the move: clone src's replica to dst.
          const ChunkInfo* ci = meta_->FindChunk(h);
          if (ci == nullptr) continue;
          CloneOp op;
          op.serial = ++next_serial_;
          op.target = dst;
          op.source = src;
          op.move_from = src;
          op.version = ci->version;
          const uint64_t serial = op.serial;
          calls_.Call(dst, CloneReq{h, op.version, src}, cfg_.request_timeout_ms * 4,
                      AsMaster([this, h, serial](const Result<Message>& r) {
                        OnCloneReply(h, serial, r);
                      }));
          auto& del = servers_[dst].to_delete;
          del.erase(std::remove(del.begin(), del.end(), h), del.end());
          clones_[h] = std::move(op);
          stats_.counters[Counter::kClonesOrdered]++;
          GFS_LOG_DEBUG("master: rebalance moves chunk %llu from rank %d to rank %d",
                        static_cast<unsigned long long>(h), src, dst);
          busy.insert(src);
          busy.insert(dst);
          bytes[src] -= c.bytes;
          bytes[dst] += c.bytes;
          --budget;
          started = true;
          break;
        }
      }
    }
    if (!started) break;
  }
}

void MasterServer::FinishMove(uint64_t handle, const CloneOp& op) {
  // The target's copy is registered at the current version (OnCloneReply):
  // the source's goes only when the others still make the replication.
  const ChunkInfo* ci = meta_->FindChunk(handle);
  const FileInfo* f = ci ? meta_->FindFile(ci->file_id) : nullptr;
  if (f == nullptr) return;
  std::vector<int32_t> good = GoodReplicas(handle);
  if (std::find(good.begin(), good.end(), op.move_from) == good.end()) return;
  if (good.size() < static_cast<size_t>(f->replication) + 1) return;
  DropReplica(handle, op.move_from);
  stats_.counters[Counter::kRebalanceMoves]++;
}

}  // namespace gfs
