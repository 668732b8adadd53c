// ChunkServer: the two orders snapshots need. kRevokeLease ends this
// server's lease on a chunk a snapshot is about to share, answered once no
// mutation it ordered is still in flight (so none lands after the snapshot
// took its copy of the metadata). kCopyChunk is copy-on-write: the first
// mutation of a shared chunk goes to a new chunk that every replica makes
// from its own copy of the old one, reading and writing its local store
// only (no byte crosses ranks).
#include <algorithm>

#include "chunk/chunk_server.h"

namespace gfs {

namespace {

constexpr size_t kCopyPiece = 1u << 20;  // bytes read and written per step

}  // namespace

void ChunkServer::OnRevokeLease(Message& m) {
  RevokeLeaseReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  // No new mutation is ordered from now on: the client's next try goes to
  // the master, which copies the chunk first if it is shared.
  leases_.erase(r.handle);
  lease_used_.erase(r.handle);
  auto busy = mutations_in_flight_.find(r.handle);
  if (busy == mutations_in_flight_.end()) return Reply(m, Status::OK());
  revoke_waiters_[r.handle].push_back(m);  // answered in Complete
}

void ChunkServer::MutationDone(uint64_t handle) {
  auto it = mutations_in_flight_.find(handle);
  if (it == mutations_in_flight_.end() || --it->second > 0) return;
  mutations_in_flight_.erase(it);
  auto w = revoke_waiters_.find(handle);
  if (w == revoke_waiters_.end()) return;
  std::vector<Message> waiting = std::move(w->second);
  revoke_waiters_.erase(w);
  for (const Message& req : waiting) Reply(req, Status::OK());
}

Status ChunkServer::CopyChunkLocally(uint64_t from, uint64_t to, uint64_t version) {
  auto meta = store_.Meta(from);
  if (!meta.ok()) return meta.status();
  if (meta->version != version) {
    return Status(Code::kStaleVersion, "replica of chunk " + std::to_string(from) + " at version " +
                                           std::to_string(meta->version) + ", the copy is of " +
                                           std::to_string(version));
  }
  GFS_RETURN_IF_ERROR(RoomFor(to, meta->length));
  GFS_RETURN_IF_ERROR(store_.Create(to, version));
  // Every block is read verified and written with a fresh checksum: the copy
  // holds the same bytes and checksums, and a damaged block fails the copy
  // (the master then leaves this server out of the new chunk's replicas).
  std::vector<uint8_t> piece;
  for (uint64_t off = 0; off < meta->length; off += kCopyPiece) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kCopyPiece, meta->length - off));
    GFS_RETURN_IF_ERROR(store_.Read(from, off, n, &piece));
    if (piece.size() != n) {
      return Status::Corruption("chunk " + std::to_string(from) + " shorter than its length");
    }
    GFS_RETURN_IF_ERROR(store_.Write(to, off, piece.data(), piece.size()));
  }
  GFS_RETURN_IF_ERROR(store_.Sync(to));
  stats_.counters[Counter::kCopyLocalBytes] += meta->length;
  return Status::OK();
}

void ChunkServer::OnCopyChunk(Message& m) {
  CopyChunkReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  if (r.from == r.to || r.to == 0) return Reply(m, Status::InvalidArgument("copy-chunk handles"));
  if (store_.Has(r.to)) {
    // Left by an earlier try of this copy that failed on the way (the master
    // never uses a handle twice): start again from nothing.
    s = store_.Delete(r.to);
    if (!s.ok()) return Reply(m, s);
  }
  s = CopyChunkLocally(r.from, r.to, r.version);
  if (!s.ok()) {
    if (store_.Has(r.to)) (void)store_.Delete(r.to);
    return Reply(m, s);
  }
  stats_.counters[Counter::kChunksCopiedLocal]++;
  Reply(m, Status::OK());
}

}  // namespace gfs
