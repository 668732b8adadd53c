// The lease and location cache: which chunkservers hold a chunk, which one
// is primary, and for how long the client may trust that.
#include <algorithm>

#include "io/client.h"

namespace gfs {

Result<Client::CachedLease> Client::GetLease(File* f, uint32_t index) {
  auto key = std::make_pair(f->id, index);
  auto it = leases_.find(key);
  const uint64_t now = MonoMicros();
  if (it != leases_.end() && it->second.expires_us > now) return it->second;
  LeaseReq req;
  req.path = f->path;
  req.file_id = f->id;
  req.index = index;
  LeaseReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  CachedLease l;
  l.handle = rep.handle;
  l.version = rep.version;
  l.primary = rep.primary;
  l.replicas = rep.replicas;
  l.expires_us = now + static_cast<uint64_t>(rep.lease_ms) * 500;  // half the lease
  leases_[key] = l;
  locs_.erase(key);
  return l;
}

Result<uint32_t> Client::GetAppendLease(File* f) {
  LeaseReq req;
  req.path = f->path;
  req.file_id = f->id;
  req.append = true;
  LeaseReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  CachedLease l;
  l.handle = rep.handle;
  l.version = rep.version;
  l.primary = rep.primary;
  l.replicas = rep.replicas;
  l.expires_us = MonoMicros() + static_cast<uint64_t>(rep.lease_ms) * 500;  // half the lease
  leases_[{f->id, rep.index}] = l;
  return rep.index;
}

Status Client::FetchLocations(File* f, uint32_t first, uint32_t count) {
  LookupReq req;
  req.path = f->path;
  req.first = first;
  req.count = count;
  LookupReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  if (rep.attr.id != f->id) return Status::NotFound(f->path + " was replaced by another file");
  f->length = std::max(f->length, rep.attr.length);
  const uint64_t expires = MonoMicros() + 30ull * 1000 * 1000;
  for (ChunkLocation& c : rep.chunks) {
    locs_[{f->id, c.index}] = CachedLoc{std::move(c), expires};
  }
  return Status::OK();
}

void Client::ForgetReplica(uint64_t file_id, uint32_t index, int32_t rank) {
  auto it = locs_.find({file_id, index});
  if (it == locs_.end()) return;
  auto& reps = it->second.loc.replicas;
  auto r = std::find(reps.begin(), reps.end(), rank);
  if (r == reps.end() || reps.size() < 2) return;  // the last one stays: the master decides
  reps.erase(r);
  stats_.counters["replicas_avoided"]++;
}

int32_t Client::PickReplica(const ChunkLocation& loc, uint64_t turn, size_t attempt) {
  const int self = rpc_.transport()->rank();
  std::vector<int32_t> order = OrderByDistance(loc.replicas, self);
  // Spread reads over the replicas nearest to this client (those on its host,
  // else all of them: every other host is as far).
  size_t same = 1;
  while (same < order.size() && SameHostName(order[same], self) == SameHostName(order[0], self)) {
    ++same;
  }
  return order[(turn % same + attempt) % order.size()];
}

}  // namespace gfs
