// The lease and location cache: which chunkservers hold a chunk, which one
// is primary, and for how long the client may trust that.
#include "io/client/lease_cache.h"

#include <algorithm>

#include "io/client.h"

namespace gfs {

const ChunkLease* LeaseCache::Lease(uint64_t file, uint32_t index, uint64_t now_us) const {
  auto it = leases_.find({file, index});
  return it != leases_.end() && it->second.expires_us > now_us ? &it->second : nullptr;
}

void LeaseCache::PutLease(uint64_t file, uint32_t index, const ChunkLease& lease) {
  leases_[{file, index}] = lease;
}

void LeaseCache::DropLease(uint64_t file, uint32_t index) { leases_.erase({file, index}); }

LeaseCache::Location* LeaseCache::Find(uint64_t file, uint32_t index) {
  auto it = locs_.find({file, index});
  return it == locs_.end() ? nullptr : &it->second;
}

void LeaseCache::PutLocation(uint64_t file, ChunkLocation loc, uint64_t now_us) {
  const uint32_t index = loc.index;
  locs_[{file, index}] = Location{std::move(loc), now_us + kLocationTtlUs};
}

void LeaseCache::DropLocation(uint64_t file, uint32_t index) { locs_.erase({file, index}); }

void LeaseCache::DropLocations(uint64_t file) {
  locs_.erase(locs_.lower_bound({file, 0}), locs_.upper_bound({file, 0xFFFFFFFFu}));
}

std::map<uint64_t, std::vector<int32_t>> LeaseCache::ReplicasOf(uint64_t file) const {
  std::map<uint64_t, std::vector<int32_t>> out;
  for (auto it = locs_.lower_bound({file, 0}); it != locs_.end() && it->first.first == file; ++it) {
    out[it->second.loc.handle] = it->second.loc.replicas;
  }
  return out;
}

bool LeaseCache::DropReplica(uint64_t file, uint32_t index, int32_t rank) {
  Location* l = Find(file, index);
  if (l == nullptr) return false;
  auto& reps = l->loc.replicas;
  auto r = std::find(reps.begin(), reps.end(), rank);
  if (r == reps.end() || reps.size() < 2) return false;
  reps.erase(r);
  return true;
}

Result<ChunkLease> Client::GetLease(File* f, uint32_t index) {
  const uint64_t now = env_->NowMicros();
  if (const ChunkLease* cached = cache_->Lease(f->id, index, now)) return *cached;
  LeaseReq req;
  req.path = f->path;
  req.file_id = f->id;
  req.index = index;
  LeaseReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  ChunkLease l;
  l.handle = rep.handle;
  l.version = rep.version;
  l.primary = rep.primary;
  l.replicas = rep.replicas;
  l.expires_us = now + static_cast<uint64_t>(rep.lease_ms) * 500;  // half the lease
  cache_->PutLease(f->id, index, l);
  cache_->DropLocation(f->id, index);
  return l;
}

Result<uint32_t> Client::GetAppendLease(File* f) {
  LeaseReq req;
  req.path = f->path;
  req.file_id = f->id;
  req.append = true;
  LeaseReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  ChunkLease l;
  l.handle = rep.handle;
  l.version = rep.version;
  l.primary = rep.primary;
  l.replicas = rep.replicas;
  l.expires_us = env_->NowMicros() + static_cast<uint64_t>(rep.lease_ms) * 500;  // half the lease
  cache_->PutLease(f->id, rep.index, l);
  // As in GetLease: the chunk may have a new handle now (copy-on-write).
  cache_->DropLocation(f->id, rep.index);
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
  const uint64_t now = env_->NowMicros();
  for (ChunkLocation& c : rep.chunks) cache_->PutLocation(f->id, std::move(c), now);
  return Status::OK();
}

void Client::ForgetReplica(uint64_t file_id, uint32_t index, int32_t rank) {
  if (cache_->DropReplica(file_id, index, rank)) stats_.counters[Counter::kReplicasAvoided]++;
}

int32_t Client::PickReplica(const ChunkLocation& loc, uint64_t turn, size_t attempt) {
  const int self = rpc_.transport()->rank();
  std::vector<int32_t> order = OrderByDistance(loc.replicas, self);
  // Spread reads over the replicas nearest to this client (those on its host,
  // else those on its rack, else all of them).
  size_t same = 1;
  while (same < order.size() && Distance(order[same], self) == Distance(order[0], self)) ++same;
  return order[(turn % same + attempt) % order.size()];
}

}  // namespace gfs
