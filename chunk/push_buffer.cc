// ChunkServer: the push buffer. Pushed data is held, bounded by
// --push-buffer-limit, and forwarded down the client's chain until the
// mutation that uses it arrives (or it expires).
#include <algorithm>

#include "chunk/chunk_server.h"
#include "common/crc32c.h"

namespace gfs {
namespace {

constexpr size_t kMaxTimeline = 256;

}  // namespace

void ChunkServer::OnPushData(Message& m) {
  PushDataMsg p;
  if (!m.Decode(&p).ok() || p.bytes.size > cfg_.slice_size * 4ull + 65536) return;
  stats_.counters[Counter::kPushSlicesRecv]++;
  stats_.push_bytes_from[m.source] += p.bytes.size;
  const uint64_t now = Now();
  PushKey key{p.origin, p.data_id};
  auto [it, fresh] = pushes_.try_emplace(key);
  PushEntry& e = it->second;
  if (fresh) {
    e.total = p.total;
    e.expires_us = now + 2ull * cfg_.request_timeout_ms * 1000;
    if (push_held_ + p.total > cfg_.push_buffer_limit) {
      e.rejected = true;
      PushAckMsg ack{p.data_id, static_cast<uint16_t>(Code::kBusy), t_->rank()};
      LogIfSendFailed(SendRequest(t_, p.origin, ack, 0, 0), "a push ack");
    } else {
      push_held_ += p.total;
      e.held = p.total;
    }
    if (stats_.push_timeline.size() < kMaxTimeline) {
      e.timeline = static_cast<int>(stats_.push_timeline.size());
      stats_.push_timeline.push_back({p.origin, p.data_id, now, now, 0});
    }
  }
  if (e.timeline >= 0) {
    PushTimeline& tl = stats_.push_timeline[static_cast<size_t>(e.timeline)];
    tl.last_us = now;
    tl.bytes += p.bytes.size;
  }
  if (e.rejected) return;
  if (p.offset != e.received || e.received + p.bytes.size > e.total) {
    // Out of order or oversized: the push is broken; the client will time
    // out and push again under a new id.
    e.rejected = true;
    return;
  }
  e.slices.emplace_back(m.buf, p.bytes);
  e.received += p.bytes.size;
  // Forward the identical buffer to the next rank of the chain right away.
  int me = t_->rank();
  size_t pos = 0;
  while (pos < p.chain.size() && p.chain[pos] != me) ++pos;
  if (pos + 1 < p.chain.size()) {
    LogIfSendFailed(t_->Send(p.chain[pos + 1], m.buf), "a forwarded push slice");
    stats_.counters[Counter::kPushBytesForwarded] += p.bytes.size;
  } else if (e.received == e.total) {
    PushAckMsg ack{p.data_id, 0, me};
    LogIfSendFailed(SendRequest(t_, p.origin, ack, 0, 0), "a push ack");
  }
}

void ChunkServer::TakePieceCrcs(PushEntry* e) {
  constexpr uint64_t kPiece = ChunkStore::kBlockSize;
  e->piece_crcs.clear();
  uint32_t crc = 0;
  uint64_t fill = 0;
  for (const auto& sl : e->slices) {
    const uint8_t* p = sl.second.data;
    uint64_t n = sl.second.size;
    while (n > 0) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, kPiece - fill));
      crc = crc32c::Extend(crc, p, k);
      fill += k;
      p += k;
      n -= k;
      if (fill == kPiece) {
        e->piece_crcs.push_back(crc);
        crc = 0;
        fill = 0;
      }
    }
  }
  if (fill > 0) e->piece_crcs.push_back(crc);  // the short last piece
}

void ChunkServer::KeepBounced(PushEntry* e) {
  // Long enough for the client to learn the next chunk's lease; a retry that
  // comes later pushes again (kDataMissing is retryable).
  e->expires_us = std::min(e->expires_us, Now() + 5000000);
  stats_.counters[Counter::kPushesKeptForRetry]++;
}
void ChunkServer::ExpirePushes(uint64_t now) {
  for (auto it = pushes_.begin(); it != pushes_.end();) {
    if (now >= it->second.expires_us) {
      push_held_ -= it->second.held;
      it = pushes_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace gfs
