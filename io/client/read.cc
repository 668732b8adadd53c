// Reads: a range cut into pieces read from the nearest replica, falling over
// to others, block by block around corruption; the committed length a
// tailing reader may read up to.
#include <algorithm>
#include <cstring>
#include <set>

#include "io/client.h"
#include "io/client/lease_cache.h"
#include "io/client/read_state.h"

namespace gfs {

Result<size_t> Client::Read(File* f, uint64_t offset, void* buf, size_t n,
                            const ProgressFn& progress) {
  auto* out = static_cast<uint8_t*>(buf);
  if (offset + n > f->length) {
    // Maybe the file grew: ask the master (this also fetches locations).
    GFS_RETURN_IF_ERROR(FetchLocations(f, static_cast<uint32_t>(offset / f->chunk_size),
                                       static_cast<uint32_t>(n / f->chunk_size + 2)));
  }
  if (offset >= f->length) return static_cast<size_t>(0);
  n = static_cast<size_t>(std::min<uint64_t>(n, f->length - offset));

  ReadStream& rs = Stream(f->id);
  if (offset != rs.next) {
    DropAhead(&rs);
    rs.streak = 0;
  } else if (rs.streak < 1000) {
    rs.streak++;
  }
  const size_t local = TakeLocal(f, offset, out, n);
  const size_t ahead =
      local + (local < n ? TakeAhead(f, &rs, offset + local, out + local, n - local) : 0);
  if (ahead > local) {
    stats_.counters["bytes_read"] += ahead - local;
    stats_.counters["bytes_read_ahead"] += ahead - local;
  }
  if (ahead > 0 && progress) progress(ahead);
  if (ahead < n) {
    DropAhead(&rs);  // what is left is not covered by read-ahead
    ProgressFn rest;
    if (progress) rest = [&progress, ahead](uint64_t done) { progress(ahead + done); };
    GFS_RETURN_IF_ERROR(ReadPieces(f, offset + ahead, out + ahead, n - ahead, rest));
  }
  rs.next = offset + n;
  // The second sequential read in a row starts read-ahead.
  if (rs.streak >= 1) TopUpAhead(f, &rs, offset + n);
  return n;
}

Status Client::ReadPieces(File* f, uint64_t offset, uint8_t* out, size_t n,
                          const ProgressFn& progress) {
  struct Piece {
    uint64_t pos;  // offset within buf
    uint32_t index;
    uint64_t chunk_off;
    uint32_t len;
    size_t attempt = 0;
    bool refreshed = false;
    int32_t target = -1;    // of the request in flight
    bool local = false;     // that request is a kReadLocal
    bool no_local = false;  // short-circuit failed: read through the chunkserver
    int32_t same = -1;      // ... that one: it verifies, and reports a corrupt block
    uint64_t turn = 0;      // spreads pieces over equally near replicas
    // Replicas that answered with fewer bytes than asked (their chunk ends
    // first), and the most bytes one of them had (already in `out`). Only
    // when every replica ends there is the rest a hole that reads as zeros.
    std::set<int32_t> short_from;
    size_t best = 0;
    bool corrupt = false;  // a replica failed its checksum here
    uint64_t handle = 0;   // of the request in flight
  };
  std::vector<Piece> pieces;
  for (size_t done = 0; done < n;) {
    uint64_t pos = offset + done;
    Piece pc;
    pc.pos = done;
    pc.index = static_cast<uint32_t>(pos / f->chunk_size);
    pc.chunk_off = pos % f->chunk_size;
    pc.len = static_cast<uint32_t>(
        std::min<uint64_t>({n - done, f->chunk_size - pc.chunk_off, cfg_.read_size}));
    pc.turn = reads_->read_rr++;
    pieces.push_back(pc);
    done += pc.len;
  }
  // Make sure every chunk's location is cached (one batched lookup).
  const uint64_t now = MonoMicros();
  for (const Piece& pc : pieces) {
    const LeaseCache::Location* at = cache_->Find(f->id, pc.index);
    // A chunk cached without replicas was being created (or re-leased) when
    // it was looked up: ask again rather than fail.
    if (at == nullptr || at->expires_us <= now ||
        (at->loc.handle != 0 && at->loc.replicas.empty())) {
      uint32_t last = pieces.back().index;
      GFS_RETURN_IF_ERROR(FetchLocations(f, pc.index, last - pc.index + 1));
      break;
    }
  }

  std::map<uint64_t, size_t> inflight;  // request id -> piece
  size_t next = 0, completed = 0;
  uint64_t bytes_done = 0;
  // A reply of `got` bytes (already in out) for piece i: done, or short.
  // Returns true when the piece is complete.
  auto took = [&](size_t i, size_t got) -> bool {
    Piece& pc = pieces[i];
    if (got >= pc.len) return true;
    pc.best = std::max(pc.best, got);
    pc.short_from.insert(pc.target);
    const LeaseCache::Location* at = cache_->Find(f->id, pc.index);
    std::set<int32_t> all;
    if (at != nullptr) all.insert(at->loc.replicas.begin(), at->loc.replicas.end());
    bool others = false;
    for (int32_t r : all) others = others || pc.short_from.count(r) == 0;
    if (others) {
      stats_.counters["read_short_replies"]++;
      return false;
    }
    // Every replica's chunk ends here: a hole inside the file (a sparse
    // write, a truncation that grew it), which reads as zeros.
    std::memset(out + pc.pos + pc.best, 0, pc.len - pc.best);
    return true;
  };
  auto issue = [&](size_t i) -> Status {
    Piece& pc = pieces[i];
    const LeaseCache::Location* at = cache_->Find(f->id, pc.index);
    if (at == nullptr || at->loc.handle == 0) {
      std::memset(out + pc.pos, 0, pc.len);  // a hole reads as zeros
      return Status(Code::kOk, "hole");
    }
    const ChunkLocation& loc = at->loc;
    if (loc.replicas.empty()) {
      return Status::Unavailable("no live replica of chunk " + std::to_string(pc.index) + " of " +
                                 f->path);
    }
    if (pc.attempt >= loc.replicas.size() * 2) {
      return Status::Unavailable("every replica of chunk " + std::to_string(pc.index) + " of " +
                                 f->path + " failed");
    }
    int32_t target = pc.same >= 0 ? pc.same : PickReplica(loc, pc.turn, pc.attempt);
    // After a short answer, the replicas that have not answered short first.
    for (size_t k = 0; pc.same < 0 && pc.short_from.count(target) != 0 && k < loc.replicas.size();
         ++k) {
      target = PickReplica(loc, pc.turn, ++pc.attempt);
    }
    pc.same = -1;
    pc.target = target;
    pc.local = ShortCircuit(target) && !pc.no_local;
    ReadLocalReq r;  // a ReadReq under its own type
    r.handle = loc.handle;
    pc.handle = loc.handle;
    r.version = loc.version;
    r.offset = pc.chunk_off;
    r.length = pc.len;
    Result<uint64_t> id = Status::Internal("unset");
    if (pc.local) {
      // The checksums of the rest of the chunk too (4 bytes per 64 KiB), for
      // the reads that follow (TakeLocal): one round trip per chunk, not one
      // per read, while a sleeping chunkserver waits for a core to answer.
      r.length = static_cast<uint32_t>(std::max<uint64_t>(
          pc.len, std::min<uint64_t>(f->chunk_size - pc.chunk_off, kLocalWindow)));
      id = rpc_.Start(target, r, cfg_.request_timeout_ms);
    } else {
      id = rpc_.Start(target, static_cast<const ReadReq&>(r), cfg_.request_timeout_ms);
    }
    if (!id.ok()) return id.status();
    inflight[*id] = i;
    return Status::OK();
  };

  // The piece is asked for again (another replica, or the same chunkserver
  // without short-circuit); a hole needs no answer.
  auto ask_again = [&](size_t i) -> Status {
    Status st = issue(i);
    if (st.ok() && st.message() == "hole") ++completed;
    return st;
  };
  auto finish = [&](const Piece& pc) {
    ++completed;
    bytes_done += pc.len;
    stats_.counters["bytes_read"] += pc.len;
    if (progress) progress(bytes_done);
  };
  while (completed < pieces.size()) {
    while (next < pieces.size() && inflight.size() < std::max<uint32_t>(cfg_.read_window, 1)) {
      Status s = issue(next);
      if (!s.ok()) return s;
      if (s.message() == "hole") {
        ++completed;
        bytes_done += pieces[next].len;
      }
      ++next;
    }
    if (inflight.empty()) continue;
    std::vector<uint64_t> ids;
    for (auto& [id, i] : inflight) ids.push_back(id);
    uint64_t which = 0;
    auto m = rpc_.WaitAny(ids, &which);
    size_t i = inflight[which];
    inflight.erase(which);
    Piece& pc = pieces[i];
    Status s = m.ok() ? m->status() : m.status();
    if (pc.local && s.ok()) {
      ReadLocalReply lrep;
      size_t got = 0;
      Status ls = m->Decode(&lrep);
      if (ls.ok())
        ls = ReadLocalPiece(f, pc.index, pc.handle, pc.target, lrep, pc.chunk_off, out + pc.pos,
                            pc.len, &got);
      if (ls.ok()) {
        stats_.counters["bytes_read_local"] += got;
        if (!took(i, got)) {
          pc.attempt++;
          GFS_RETURN_IF_ERROR(ask_again(i));
          continue;
        }
        finish(pc);
        continue;
      }
      // Read it through the same chunkserver instead (not a failed attempt).
      stats_.counters["local_read_fallbacks"]++;
      pc.no_local = true;
      pc.same = pc.target;
      GFS_RETURN_IF_ERROR(ask_again(i));
      continue;
    }
    ReadReply rep;
    if (s.ok()) s = m->Decode(&rep);
    if (s.ok()) {
      const size_t got = std::min<size_t>(rep.bytes.size, pc.len);
      if (got >= pc.best) std::memcpy(out + pc.pos, rep.bytes.data, got);
      if (!took(i, got)) {
        pc.attempt++;
        GFS_RETURN_IF_ERROR(ask_again(i));
        continue;
      }
      finish(pc);
      continue;
    }
    // Try another replica; after a full round, refresh locations once.
    stats_.counters["read_retries"]++;
    if (s.code() == Code::kCorruption) pc.corrupt = true;
    if (s.code() == Code::kTimeout || s.code() == Code::kUnavailable) {
      ForgetReplica(f->id, pc.index, pc.target);
    }
    pc.attempt++;
    const LeaseCache::Location* at = cache_->Find(f->id, pc.index);
    if (!pc.refreshed && at != nullptr && pc.attempt >= at->loc.replicas.size()) {
      pc.refreshed = true;
      pc.attempt = 0;
      cache_->DropLocation(f->id, pc.index);
      GFS_RETURN_IF_ERROR(FetchLocations(f, pc.index, 1));
    }
    Status again = issue(i);
    if (!again.ok() && pc.corrupt && !reads_->narrowing) {
      // Every replica failed a checksum somewhere in the piece: each block
      // may still be good on some replica. Read it block by block.
      Status around = ReadAround(f, offset + pc.pos, out + pc.pos, pc.len, s);
      if (around.ok()) {
        finish(pc);
        continue;
      }
      for (auto& [id, k] : inflight) rpc_.Forget(id);
      return around;
    }
    if (!again.ok()) {
      for (auto& [id, k] : inflight) rpc_.Forget(id);
      return Status(s.code() == Code::kOk ? again.code() : s.code(),
                    again.message() + " (last error: " + s.ToString() + ")");
    }
    if (again.message() == "hole") ++completed;
  }
  return Status::OK();
}

Status Client::ReadAround(File* f, uint64_t offset, uint8_t* out, size_t n, const Status& last) {
  // Each checksum block on its own, from whichever replica holds it good;
  // the bytes no replica holds good make the read fail, naming them (every
  // other byte stays readable by reads that do not cover them).
  constexpr uint64_t kBlock = 64 * 1024;
  uint64_t lo = 0, hi = 0;
  reads_->narrowing = true;
  for (uint64_t pos = offset; pos < offset + n;) {
    const uint64_t chunk_start = pos / f->chunk_size * f->chunk_size;
    const uint64_t bend = std::min({chunk_start + ((pos - chunk_start) / kBlock + 1) * kBlock,
                                    chunk_start + f->chunk_size, offset + n});
    Status s = ReadPieces(f, pos, out + (pos - offset), static_cast<size_t>(bend - pos), {});
    if (!s.ok() && s.code() != Code::kCorruption) {
      reads_->narrowing = false;
      return s;
    }
    if (!s.ok() && (hi == 0 || hi == pos)) {
      if (hi == 0) lo = pos;
      hi = bend;
    }
    pos = bend;
  }
  reads_->narrowing = false;
  if (hi == 0) {
    stats_.counters["reads_assembled_from_blocks"]++;
    return Status::OK();
  }
  return Status::Corruption(
      f->path + ": bytes " + std::to_string(lo) + ".." + std::to_string(hi) + " (" +
      std::to_string(hi - lo) + " bytes at offset " + std::to_string(lo) +
      ") are unreadable: no replica holds a good copy (last error: " + last.ToString() + ")");
}

Result<uint64_t> Client::CommittedLength(File* f) {
  LookupReq req;
  req.path = f->path;
  req.first = File::kUnknownIndex;  // the last chunk
  req.count = 1;
  LookupReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  if (rep.attr.id != f->id) return Status::NotFound(f->path + " was replaced by another file");
  if (rep.chunks.empty()) return std::max<uint64_t>(f->length, rep.attr.length);
  const ChunkLocation& last = rep.chunks.back();
  cache_->PutLocation(f->id, last, MonoMicros());
  if (last.handle == 0 || last.replicas.empty()) {
    // The last chunk is being created (its replicas are not confirmed yet):
    // nothing in it is committed, and every chunk before it is (a chunk is
    // padded on every replica before appends move to the next).
    uint64_t total = static_cast<uint64_t>(last.index) * f->chunk_size;
    f->length = std::max(f->length, total);
    return total;
  }
  std::vector<uint64_t> ids;
  for (int32_t r : last.replicas) {
    auto id = rpc_.Start(r, CommittedReq{last.handle}, cfg_.request_timeout_ms);
    if (!id.ok()) return id.status();
    ids.push_back(*id);
  }
  bool have_primary = false, have_any = false;
  uint64_t committed = 0, min_len = ~0ull;
  Status err;
  for (uint64_t id : ids) {
    auto m = rpc_.Wait(id);
    Status s = m.ok() ? m->status() : m.status();
    CommittedReply c;
    if (s.ok()) s = m->Decode(&c);
    if (!s.ok()) {
      err = s;
      continue;
    }
    have_any = true;
    min_len = std::min(min_len, c.length);
    if (c.primary) {
      have_primary = true;
      committed = c.committed;
    }
  }
  if (!have_any) return err;
  // Without a primary no append is in flight: what every replica holds is
  // committed.
  uint64_t in_chunk = have_primary ? committed : min_len;
  uint64_t total = static_cast<uint64_t>(last.index) * f->chunk_size + in_chunk;
  f->length = std::max(f->length, total);
  return total;
}

}  // namespace gfs
