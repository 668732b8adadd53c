// ChunkServer: keeping replicas whole. Verification of every replica for
// the master (kVerify), re-replication from a peer (kClone), repair of
// damaged blocks from peers (kRepair) and background scrubbing.
#include <algorithm>

#include "chunk/chunk_server.h"
#include "common/log.h"

namespace gfs {
namespace {

// Scrubbing waits for this long without client or peer I/O, verifies at most
// this many bytes per step, and starts a new pass over all chunks no sooner
// than this long after the previous one began.
constexpr uint64_t kScrubIdleUs = 500 * 1000;
constexpr size_t kScrubPiece = 1u << 20;
constexpr uint64_t kScrubPassUs = 60ull * 1000 * 1000;

}  // namespace

void ChunkServer::OnVerify(Message& m) {
  VerifyReply rep;
  for (const ChunkMeta& c : store_.List()) {
    if (c.version == 0 || repairs_.count(c.handle) != 0) continue;  // a clone or repair under way
    ++rep.checked;
    std::vector<Range> damaged;
    Status s = store_.Scan(c.handle, &damaged);
    if (!s.ok() && s.code() != Code::kNotFound) damaged.push_back(Range{0, c.length});
    if (!damaged.empty()) rep.damaged.push_back(ChunkDamage{c.handle, ToWire(damaged)});
  }
  stats_.counters[Counter::kVerifyRuns]++;
  LogIfSendFailed(SendReply(t_, m, rep), "a reply");
}

void ChunkServer::OnHeldChunks(Message& m) {
  HeldChunksReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  DeleteChunks(r.delete_handles);
  HeldChunksReply rep;
  for (const ChunkMeta& c : store_.List()) {
    // A chunk being cloned or repaired here is the master's doing: not an orphan.
    if (c.version == 0 || repairs_.count(c.handle) != 0) continue;
    rep.handles.push_back(c.handle);
  }
  LogIfSendFailed(SendReply(t_, m, rep), "a reply");
}

void ChunkServer::OnClone(Message& m) {
  CloneReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  const bool bad_meta = std::any_of(store_.BadChunks().begin(), store_.BadChunks().end(),
                                    [&](const BadChunk& b) { return b.handle == r.handle; });
  if (store_.Has(r.handle) || bad_meta) {
    // A leftover replica the master does not count (stale, half-cloned, or
    // with an unreadable meta file): the source holds a good copy; start over.
    Status d = store_.Delete(r.handle);
    if (!d.ok()) return Reply(m, d);
  }
  // Version 0 until the copy is complete and synced: a half-made copy left by
  // a crash is stale, never taken for a replica.
  s = RoomFor(r.handle, 0);
  if (s.ok()) s = store_.Create(r.handle, 0);
  if (!s.ok()) return Reply(m, s);
  auto c = std::make_shared<Clone>();
  c->master_req = m;
  c->handle = r.handle;
  c->version = r.version;
  c->source = r.source;
  stats_.counters[Counter::kClonesStarted]++;
  ReadForClone(std::move(c));
}

void ChunkServer::ReadForClone(std::shared_ptr<Clone> c) {
  ReadReq rr{c->handle, c->version, c->offset, cfg_.read_size};
  calls_.Call(c->source, rr, cfg_.request_timeout_ms,
              [this, c](Result<Message> r) { OnCloneRead(c, std::move(r)); });
}

void ChunkServer::FinishClone(const Clone& c, const Status& s) {
  Status st = s;
  if (st.ok()) st = store_.Sync(c.handle);
  if (st.ok()) st = store_.SetVersion(c.handle, c.version);
  if (!st.ok()) {
    // The partial copy goes; if even that fails, the next registration
    // reports it and the master orders its deletion again.
    Status gone = store_.Delete(c.handle);
    if (!gone.ok()) GFS_LOG_WARN("could not delete a failed clone: %s", gone.ToString().c_str());
    stats_.counters[Counter::kClonesFailed]++;
  } else {
    stats_.counters[Counter::kClonesDone]++;
    stats_.counters[Counter::kCloneBytes] += c.offset;
  }
  Reply(c.master_req, st);
}

void ChunkServer::OnCloneRead(const std::shared_ptr<Clone>& cp, Result<Message> r) {
  DrainApply();  // the store is this thread's again
  OnPeerReply(r.ok());
  Clone& c = *cp;
  if (!r.ok()) {
    // No answer in time (or the read could not be sent).
    return FinishClone(c, Status::Timeout("the source of a clone did not answer"));
  }
  Message& m = *r;
  Status s = m.status();
  ReadReply rep;
  if (s.ok()) s = m.Decode(&rep);
  if (!s.ok()) return FinishClone(c, s);
  if (rep.bytes.size > 0) {
    s = RoomFor(c.handle, c.offset + rep.bytes.size);
    if (s.ok()) s = store_.Write(c.handle, c.offset, rep.bytes.data, rep.bytes.size);
    if (!s.ok()) return FinishClone(c, s);
    c.offset += rep.bytes.size;
  }
  if (rep.bytes.size == 0 || c.offset >= rep.chunk_length) {
    if (c.offset < rep.chunk_length) {
      return FinishClone(c, Status::IOError("source replica ended early"));
    }
    return FinishClone(c, Status::OK());
  }
  ReadForClone(cp);
}

void ChunkServer::OnRepair(Message& m) {
  RepairReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  auto meta = store_.Meta(r.handle);
  if (!meta.ok()) return Reply(m, meta.status());
  if (meta->version != r.version) {
    return Reply(m,
                 Status(Code::kStaleVersion, "replica at version " + std::to_string(meta->version) +
                                                 ", repair for " + std::to_string(r.version)));
  }
  if (repairs_.count(r.handle) != 0) return Reply(m, Status(Code::kBusy, "a repair is under way"));
  std::vector<Range> damaged;
  s = store_.Scan(r.handle, &damaged);
  if (!s.ok()) return Reply(m, s);
  Repair& rp = repairs_[r.handle];
  rp.master_req = m;
  rp.handle = r.handle;
  rp.version = r.version;
  rp.sources = r.sources;
  // Pieces of at most read_size, block aligned (a damaged range's end is a
  // block end or the chunk's end).
  const uint64_t piece =
      std::max<uint64_t>(cfg_.read_size / ChunkStore::kBlockSize, 1) * ChunkStore::kBlockSize;
  for (const Range& d : damaged) {
    if (d.length == 0) {
      rp.todo.push_back(d);  // an empty chunk that needs a new checksum file only
      continue;
    }
    for (uint64_t off = d.offset; off < d.offset + d.length; off += piece) {
      rp.todo.push_back(Range{off, std::min(piece, d.offset + d.length - off)});
    }
  }
  stats_.counters[Counter::kRepairsStarted]++;
  NextRepairPiece(r.handle);
}

void ChunkServer::NextRepairPiece(uint64_t handle) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end()) return;
  Repair& rp = it->second;
  while (!rp.todo.empty()) {
    const Range piece = rp.todo.front();
    if (piece.length == 0) {
      rp.todo.pop_front();
      Status s = store_.RepairBlocks(handle, piece.offset, nullptr, 0);
      if (!s.ok()) return FinishRepair(handle, s);
      continue;
    }
    if (rp.source >= rp.sources.size()) {
      if (piece.length > ChunkStore::kBlockSize) {
        // No source gave the piece whole: block by block, each from the
        // first source whose copy of it is good.
        rp.todo.pop_front();
        std::vector<Range> blocks;
        for (uint64_t off = piece.offset; off < piece.offset + piece.length;
             off += ChunkStore::kBlockSize) {
          blocks.push_back(Range{
              off, std::min<uint64_t>(ChunkStore::kBlockSize, piece.offset + piece.length - off)});
        }
        rp.todo.insert(rp.todo.begin(), blocks.begin(), blocks.end());
      } else {
        rp.todo.pop_front();  // no good copy anywhere: stays damaged
        stats_.counters[Counter::kRepairBlocksUnavailable]++;
      }
      rp.source = 0;
      continue;
    }
    const int32_t src = rp.sources[rp.source];
    if (src == t_->rank() || t_->PeerGone(src)) {
      rp.source++;
      continue;
    }
    ReadReq rr{handle, rp.version, piece.offset, static_cast<uint32_t>(piece.length)};
    rp.read_id = calls_.Call(src, rr, cfg_.request_timeout_ms, [this, handle](Result<Message> r) {
      OnRepairRead(handle, std::move(r));
    });
    return;  // OnRepairRead goes on
  }
  FinishRepair(handle, Status::OK());
}

void ChunkServer::OnRepairRead(uint64_t handle, Result<Message> r) {
  DrainApply();  // the store is this thread's again
  OnPeerReply(r.ok());
  auto it = repairs_.find(handle);
  if (it == repairs_.end()) return;
  Repair& rp = it->second;
  rp.read_id = 0;
  if (!r.ok()) {
    // No answer in time: as a failed read (the next source). A read that
    // could not be sent at all just moves on to the next source.
    if (r.status().code() == Code::kTimeout) stats_.counters[Counter::kRepairReadsFailed]++;
    rp.source++;
    return NextRepairPiece(handle);
  }
  Message& m = *r;
  const Range piece = rp.todo.front();
  ReadReply rep;
  Status s = m.status();
  if (s.ok()) s = m.Decode(&rep);
  if (s.ok() && rep.bytes.size != piece.length) {
    s = Status::Corruption("source gave " + std::to_string(rep.bytes.size) + " of " +
                           std::to_string(piece.length) + " bytes");
  }
  if (!s.ok()) {
    stats_.counters[Counter::kRepairReadsFailed]++;
    rp.source++;
    return NextRepairPiece(handle);
  }
  s = store_.RepairBlocks(handle, piece.offset, rep.bytes.data, rep.bytes.size);
  if (!s.ok()) return FinishRepair(handle, s);
  rp.repaired += piece.length;
  stats_.counters[Counter::kRepairBytes] += piece.length;
  rp.todo.pop_front();
  rp.source = 0;
  NextRepairPiece(handle);
}

void ChunkServer::FinishRepair(uint64_t handle, const Status& s) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end()) return;
  Repair rp = std::move(it->second);
  repairs_.erase(it);
  if (rp.read_id != 0) calls_.Cancel(rp.read_id);
  Status st = s;
  RepairReply rep;
  rep.repaired_bytes = rp.repaired;
  // Durable before the master counts the blocks good; then verified anew.
  if (st.ok()) st = store_.Sync(handle);
  std::vector<Range> left;
  if (st.ok()) st = store_.Scan(handle, &left);
  if (!st.ok()) {
    stats_.counters[Counter::kRepairsFailed]++;
    return Reply(rp.master_req, st);
  }
  rep.still_damaged = ToWire(left);
  stats_.counters[left.empty() ? Counter::kRepairsDone : Counter::kRepairsPartial]++;
  LogIfSendFailed(SendReply(t_, rp.master_req, rep), "a reply");
}
void ChunkServer::Scrub(uint64_t now) {
  if (cfg_.scrub_mb_per_s == 0 || now < next_scrub_us_ || now < last_io_us_ + kScrubIdleUs) {
    return;
  }
  auto meta = store_.Meta(scrub_handle_);
  if (!meta.ok() || scrub_offset_ >= meta->length) {
    // On to the next chunk in handle order; after the last, a new pass.
    std::vector<ChunkMeta> all = store_.List();
    auto next = std::find_if(all.begin(), all.end(), [&](const ChunkMeta& c) {
      return c.handle > scrub_handle_ && c.version != 0;  // version 0: a clone being made
    });
    if (next == all.end()) {
      // The next pass starts a while after this one began (nothing to
      // verify: look again in a second).
      if (scrub_pass_start_us_ != 0) {
        stats_.counters[Counter::kScrubPasses]++;
        next_scrub_us_ = scrub_pass_start_us_ + kScrubPassUs;
      } else {
        next_scrub_us_ = now + 1000000;
      }
      scrub_handle_ = 0;
      scrub_offset_ = 0;
      scrub_pass_start_us_ = 0;
      return;
    }
    if (scrub_pass_start_us_ == 0) scrub_pass_start_us_ = now;
    scrub_handle_ = next->handle;
    scrub_offset_ = 0;
  }
  size_t skip = 0, len = 0;
  Range bad;
  Status s = store_.ReadVerified(
      scrub_handle_, scrub_offset_, kScrubPiece,
      [this](size_t span) {
        scrub_buf_.resize(span);
        return scrub_buf_.data();
      },
      &skip, &len, &bad);
  const uint64_t cost = std::max<uint64_t>(len, ChunkStore::kBlockSize);
  if (s.code() == Code::kCorruption) {
    // Reported exactly like a failed read: the master has the damaged blocks
    // repaired from a good copy. The rest of the chunk is scrubbed on.
    stats_.counters[Counter::kScrubCorrupt]++;
    ReportCorrupt(scrub_handle_, bad.length > 0 ? std::vector<Range>{bad} : std::vector<Range>{});
    scrub_offset_ = bad.length > 0 ? bad.offset + bad.length : ~0ull;
  } else if (!s.ok() || len == 0) {
    scrub_offset_ = ~0ull;  // gone, or unreadable for another reason: next chunk
  } else {
    scrub_offset_ += len;
    stats_.counters[Counter::kScrubBytes] += len;
  }
  // Pace: the bytes just verified, at the configured rate.
  next_scrub_us_ = now + cost * 1000000 / (static_cast<uint64_t>(cfg_.scrub_mb_per_s) << 20);
}
}  // namespace gfs
