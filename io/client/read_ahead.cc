// Sequential read-ahead: the requests kept in flight past a reader's
// position, and what they brought back.
#include <algorithm>
#include <cstring>

#include "io/client.h"
#include "io/client/lease_cache.h"
#include "io/client/read_state.h"

namespace gfs {

ReadStream& Client::Stream(uint64_t file_id) {
  auto it = reads_->streams.find(file_id);
  if (it == reads_->streams.end()) {
    // Few files are read at once: past 8 (8 x read_ahead of memory at
    // most), forget the stream read longest ago.
    if (reads_->streams.size() >= 8) {
      auto oldest = reads_->streams.begin();
      for (auto j = reads_->streams.begin(); j != reads_->streams.end(); ++j) {
        if (j->second.used < oldest->second.used) oldest = j;
      }
      DropAhead(&oldest->second);
      reads_->streams.erase(oldest);
    }
    it = reads_->streams.try_emplace(file_id).first;
  }
  it->second.used = ++reads_->stream_clock;
  return it->second;
}

void Client::DropAhead(ReadStream* rs) {
  for (AheadSeg& s : rs->segs) rpc_.Forget(s.id);
  rs->segs.clear();
}

void Client::ForgetStream(uint64_t file_id) {
  reads_->local.erase(file_id);
  auto it = reads_->streams.find(file_id);
  if (it == reads_->streams.end()) return;
  DropAhead(&it->second);
  reads_->streams.erase(it);
}

size_t Client::TakeAhead(File* f, ReadStream* rs, uint64_t offset, uint8_t* out, size_t n) {
  size_t done = 0;
  const uint64_t now = env_->NowMicros();
  while (done < n && !rs->segs.empty()) {
    AheadSeg& s = rs->segs.front();
    const uint64_t pos = offset + done;
    if (s.off + s.len <= pos) {
      rpc_.Forget(s.id);
      rs->segs.pop_front();
      continue;
    }
    if (s.off > pos) break;
    // Bytes that came in long ago may have been overwritten since: read them
    // anew. (A reply still on its way is as fresh as a new one would be.)
    if (now - s.started_us > kAheadMaxAgeUs) {
      Result<Message> here = Status::Timeout("read-ahead");
      if (s.have || (rpc_.PumpOnce(), rpc_.TryTake(s.id, &here))) {
        stats_.counters[Counter::kReadAheadExpired]++;
        const uint64_t cur = rs->window != 0 ? rs->window : cfg_.read_ahead;
        rs->window =
            std::min<uint64_t>(cfg_.read_ahead, std::max<uint64_t>(cur / 2, cfg_.read_size));
        break;
      }
    }
    if (!s.have) {
      auto m = rpc_.Wait(s.id);
      Status st = m.ok() ? m->status() : m.status();
      if (!st.ok()) {
        stats_.counters[Counter::kReadAheadFailed]++;
        ForgetReplica(f->id, s.index, s.target);
        break;  // the caller reads the rest directly (with retries)
      }
      s.reply = std::move(*m);
      s.have = true;
    }
    ReadReply rep;
    if (!s.reply.Decode(&rep).ok()) break;
    const uint64_t skip = pos - s.off;
    // A replica shorter than the range (an append still landing) gives
    // fewer bytes: only what it sent is used; the rest is read directly.
    if (rep.bytes.size <= skip) break;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n - done, rep.bytes.size - skip));
    std::memcpy(out + done, rep.bytes.data + skip, take);
    done += take;
    // Either the caller's range ends inside this segment, or the reply was
    // short and the caller reads the rest directly.
    if (skip + take < s.len) break;
    rs->segs.pop_front();
  }
  return done;
}

void Client::TopUpAhead(File* f, ReadStream* rs, uint64_t from) {
  if (cfg_.read_ahead == 0 || cfg_.read_size == 0) return;
  const uint64_t window = rs->window != 0 ? rs->window : cfg_.read_ahead;
  uint64_t end = from;
  if (!rs->segs.empty()) end = std::max(end, rs->segs.back().off + rs->segs.back().len);
  bool fetched = false;
  while (end < f->length && end - from < window) {
    const auto index = static_cast<uint32_t>(end / f->chunk_size);
    const uint64_t now = env_->NowMicros();
    const LeaseCache::Location* at = cache_->Find(f->id, index);
    if (at == nullptr || at->expires_us <= now) {
      if (fetched) return;
      fetched = true;  // at most one master round trip per read
      const auto count = static_cast<uint32_t>(window / f->chunk_size + 2);
      if (!FetchLocations(f, index, count).ok()) return;
      continue;
    }
    const ChunkLocation& loc = at->loc;
    if (loc.handle == 0 || loc.replicas.empty()) return;  // holes are not read ahead
    const uint64_t chunk_off = end % f->chunk_size;
    const auto len = static_cast<uint32_t>(
        std::min<uint64_t>({cfg_.read_size, f->chunk_size - chunk_off, f->length - end}));
    ReadReq r;
    r.handle = loc.handle;
    r.version = loc.version;
    r.offset = chunk_off;
    r.length = len;
    // A chunk read short-circuit is read from its file as the reader goes.
    if (ShortCircuit(OrderByDistance(loc.replicas, rpc_.transport()->rank()).front())) return;
    const int32_t target = PickReplica(loc, reads_->read_rr++, 0);
    auto id = rpc_.Start(target, r, cfg_.request_timeout_ms);
    if (!id.ok()) return;
    AheadSeg s;
    s.index = index;
    s.target = target;
    s.off = end;
    s.len = len;
    s.id = *id;
    s.started_us = now;
    rs->segs.push_back(std::move(s));
    end += len;
  }
}

}  // namespace gfs
