// MasterServer's health reports: the store report (servers, lost and
// under-replicated chunks) and fsck, optionally after every chunkserver has
// verified its replicas.
#include <algorithm>

#include "master/master_server.h"

namespace gfs {

void MasterServer::OnReport(Message& m) {
  ReportReply rep;
  rep.store_id = store_id();
  if (rpc_log_ != nullptr) rep.recent_rpcs = rpc_log_->Recent();
  for (const auto& [rank, st] : servers_) {
    ServerReport s;
    s.rank = rank;
    s.id = st.id;
    s.dir_name = st.dir_name;
    s.host = st.host;
    s.alive = st.alive;
    s.capacity = st.capacity;
    s.used = st.used;
    s.chunks = st.chunks;
    rep.servers.push_back(s);
  }
  meta_->ForEachFile([&](const std::string&, const FileInfo& f) {
    for (uint64_t h : f.chunks) {
      if (h == 0) continue;
      ++rep.chunks;
      size_t good = GoodReplicas(h).size();
      if (LiveReplicas(h).empty() || !Unreadable(h).empty()) {
        ++rep.lost;
      } else if (good < f.replication) {
        ++rep.under_replicated;
      }
    }
  });
  DeferReply(m, rep);
}

Status MasterServer::FsckAnswer(const std::string& path, FsckReply* rep) const {
  std::string norm;
  GFS_RETURN_IF_ERROR(NormalizePath(path, &norm));
  if (!meta_->Exists(norm)) return Status::NotFound(norm);
  const std::string prefix = norm == "/" ? "/" : norm + "/";
  meta_->ForEachFile([&](const std::string& p, const FileInfo& f) {
    if (p != norm && p.rfind(prefix, 0) != 0) return;
    FsckFile ff;
    ff.path = p;
    ff.replication = f.replication;
    ff.length = f.length;
    ff.chunk_size = f.chunk_size;
    for (size_t i = 0; i < f.chunks.size(); ++i) {
      if (f.chunks[i] == 0) continue;
      FsckChunk c;
      c.index = static_cast<uint32_t>(i);
      c.handle = f.chunks[i];
      const ChunkInfo* ci = meta_->FindChunk(c.handle);
      c.version = ci ? ci->version : 0;
      c.replicas = GoodReplicas(c.handle);
      auto bad = damaged_.find(c.handle);
      if (bad != damaged_.end()) {
        std::vector<int32_t> live = LiveReplicas(c.handle);
        for (const auto& [rank, ranges] : bad->second) {
          if (std::find(live.begin(), live.end(), rank) == live.end()) continue;
          c.corrupt.push_back(rank);
          ReplicaDamage d;
          d.rank = rank;
          for (const ByteRange& r : ranges) {
            // Clipped to the chunk ("somewhere" is the whole chunk).
            const uint64_t end = std::min<uint64_t>(r.offset + r.length, f.chunk_size);
            if (r.offset < end) d.ranges.push_back(ByteRange{r.offset, end - r.offset});
          }
          c.damaged.push_back(std::move(d));
        }
        for (const ByteRange& r : Unreadable(c.handle)) {
          const uint64_t end = std::min<uint64_t>(r.offset + r.length, f.chunk_size);
          if (r.offset < end) c.unreadable.push_back(ByteRange{r.offset, end - r.offset});
        }
      }
      auto st = stale_seen_.find(c.handle);
      c.stale = st == stale_seen_.end() ? 0 : st->second;
      ff.chunks.push_back(std::move(c));
    }
    rep->files.push_back(std::move(ff));
  });
  std::sort(rep->files.begin(), rep->files.end(),
            [](const FsckFile& a, const FsckFile& b) { return a.path < b.path; });
  return Status::OK();
}

void MasterServer::OnFsck(Message& m) {
  FsckReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return DeferError(m, s);
  if (r.path.empty()) r.path = "/";
  if (!r.verify) {
    FsckReply rep;
    s = FsckAnswer(r.path, &rep);
    if (!s.ok()) return DeferError(m, s);
    return DeferReply(m, rep);
  }
  // Ask every live chunkserver to verify all its replicas, answer when all did.
  std::vector<int> dests;
  for (const auto& [rank, st] : servers_) {
    if (st.alive) dests.push_back(rank);
  }
  if (dests.empty()) {
    FsckReply rep;
    s = FsckAnswer(r.path, &rep);
    s.ok() ? DeferReply(m, rep) : DeferError(m, s);
    return;
  }
  calls_.FanOut(dests, VerifyReq{}, cfg_.request_timeout_ms * 4, FanRule::All(),
                AsMasterFan([this, req = m, path = r.path](const FanResult& fan) {
                  bool all = true;
                  for (size_t i = 0; i < fan.dests.size(); ++i) {
                    if (fan.results[i].ok()) {
                      OnVerified(fan.dests[i], *fan.results[i]);
                    } else {
                      all = false;
                    }
                  }
                  if (!all) {
                    return DeferError(
                        req, Status::Timeout("a chunkserver did not finish verifying in time"));
                  }
                  FsckReply rep;
                  Status st = FsckAnswer(path, &rep);
                  st.ok() ? DeferReply(req, rep) : DeferError(req, st);
                }));
}

void MasterServer::OnVerified(int rank, const Message& m) {
  VerifyReply v;
  if (!m.status().ok() || !m.Decode(&v).ok()) return;
  // Every replica this server holds was checked: the listed ones have
  // exactly that damage, the others none.
  std::set<uint64_t> listed;
  for (const ChunkDamage& d : v.damaged) {
    listed.insert(d.handle);
    ClearDamaged(d.handle, rank);
    MarkDamaged(d.handle, rank, d.ranges);
  }
  std::vector<uint64_t> clean;
  for (const auto& [h, reps] : damaged_) {
    // A replica under repair was not verified: its repair says.
    if (reps.count(rank) != 0 && listed.count(h) == 0 && repairs_.count(h) == 0) {
      clean.push_back(h);
    }
  }
  for (uint64_t h : clean) ClearDamaged(h, rank);
  stats_.counters[Counter::kReplicasVerified] += v.checked;
}

}  // namespace gfs
