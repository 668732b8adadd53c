// ChunkServer: reads. A read is verified block by block and sent straight
// from the buffer it was read into; a local read gives the client the data
// file's name and checksums for a short-circuit read.
#include <algorithm>
#include <cstring>

#include "chunk/chunk_server.h"
#include "mpi/transport/buffer_pool.h"

namespace gfs {

Status ChunkServer::CheckReadable(Message& m, ReadReq* r, ChunkMeta* meta) {
  GFS_RETURN_IF_ERROR(m.Decode(r));
  auto got = store_.Meta(r->handle);
  if (!got.ok()) return got.status();
  *meta = *got;
  if (meta->version < r->version) {
    return Status(Code::kStaleVersion, "replica at version " + std::to_string(meta->version));
  }
  return Status::OK();
}

void ChunkServer::ReplyReadError(Message& m, uint64_t handle, const Status& s, const Range& bad) {
  stats_.counters[Counter::kReadErrors]++;
  if (s.code() == Code::kCorruption) {
    ReportCorrupt(handle, bad.length > 0 ? std::vector<Range>{bad} : std::vector<Range>{});
  }
  Reply(m, s);
}
void ChunkServer::OnRead(Message& m) {
  ReadReq r;
  ChunkMeta meta;
  Status s = CheckReadable(m, &r, &meta);
  if (!s.ok()) return Reply(m, s);
  // Build the ReadReply in place: the blocks are read (and verified) straight
  // into the outgoing buffer, after the envelope and the reply's fixed fields.
  constexpr size_t kFixed = kHeaderSize + 8 + 4;  // chunk_length, blob length
  // A pooled buffer with room for the blocks around the range (fresh pages
  // cost a fault each; see mpi/transport/buffer_pool.h).
  auto out = TakeBuffer(0, kFixed + std::min<uint64_t>(r.length, 64u << 20) + 2 * 65536);
  size_t skip = 0, len = 0;
  Range bad;
  s = store_.ReadVerified(
      r.handle, r.offset, r.length,
      [&out](size_t span) {
        out->resize(kFixed + span);
        return out->data() + kFixed;
      },
      &skip, &len, &bad);
  if (!s.ok()) return ReplyReadError(m, r.handle, s, bad);
  if (out->size() < kFixed) out->resize(kFixed);
  if (skip > 0) std::memmove(out->data() + kFixed, out->data() + kFixed + skip, len);
  out->resize(kFixed + len);
  stats_.counters[Counter::kBytesRead] += len;
  // Envelope and fixed fields, exactly as EncodeReply(ReadReply) lays them out.
  ReadReply empty;
  empty.chunk_length = meta.length;
  Buffer head = EncodeReply(m, empty);
  std::memcpy(out->data(), head->data(), kHeaderSize + 8);
  BytesWriter w(out.get());
  w.PatchU32(kHeaderSize + 8, static_cast<uint32_t>(len));
  w.PatchU32(kHeaderSize - 4, static_cast<uint32_t>(out->size() - kHeaderSize));
  LogIfSendFailed(t_->Send(m.source, std::move(out)), "a read reply");
}

void ChunkServer::OnReadLocal(Message& m) {
  ReadLocalReq r;
  ChunkMeta meta;
  Status s = CheckReadable(m, &r, &meta);
  if (!s.ok()) return Reply(m, s);
  ReadLocalReply rep;
  s = store_.BlockChecksums(r.handle, r.offset, r.length, &rep.base, &rep.end, &rep.crcs);
  if (!s.ok()) return ReplyReadError(m, r.handle, s, Range());
  rep.path = store_.DataPath(r.handle);
  rep.chunk_length = meta.length;
  rep.block_size = static_cast<uint32_t>(ChunkStore::kBlockSize);
  stats_.counters[Counter::kLocalReads]++;
  LogIfSendFailed(SendReply(t_, m, rep), "a read reply");
}
}  // namespace gfs
