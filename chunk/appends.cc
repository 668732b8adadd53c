// ChunkServer: record appends at the primary. The primary picks each
// record's offset, pads a chunk that cannot hold it, and writes the appends
// of one batch together before replicating them (mutation_order.cc).
#include "chunk/chunk_server.h"

namespace gfs {

uint64_t ChunkServer::CommittedOf(uint64_t handle) {
  auto f = appends_in_flight_.find(handle);
  if (f != appends_in_flight_.end() && !f->second.empty()) return *f->second.begin();
  auto meta = store_.Meta(handle);
  return meta.ok() ? meta->length : 0;
}

void ChunkServer::OnAppend(Message& m) {
  AppendReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  auto meta = store_.Meta(r.handle);
  if (!meta.ok()) return Reply(m, meta.status());
  if (meta->version != r.version) {
    return Reply(m, Status(Code::kStaleVersion, "chunk version " + std::to_string(meta->version) +
                                                    ", request for " + std::to_string(r.version)));
  }
  auto lease = leases_.find(r.handle);
  if (lease == leases_.end()) return Reply(m, Status(Code::kNotPrimary, "no lease on this chunk"));
  if (lease->second <= Now()) {
    // Expired by our clock (which runs ahead of the master's, or jumped):
    // the next heartbeat asks the master to extend it, if it still counts us
    // as the primary. Meanwhile the client retries.
    lease_used_.insert(r.handle);
    return Reply(m, Status(Code::kNotPrimary, "the lease on this chunk expired"));
  }
  if (r.chunk_size == 0 || r.chunk_size > ChunkStore::kMaxLength) {
    return Reply(m, Status::InvalidArgument("bad chunk size"));
  }
  PushKey key{m.source, r.data_id};
  auto push = pushes_.find(key);
  const PushEntry* pe = push == pushes_.end() ? nullptr : &push->second;
  PendingWrite pw;
  pw.client_req = m;
  pw.handle = r.handle;
  ApplyReq a;
  a.handle = r.handle;
  a.version = r.version;
  a.origin = m.source;
  a.data_id = r.data_id;
  if (r.length > r.chunk_size / 4) {
    s = Status(Code::kTooLarge, "a record may be at most a quarter of the chunk size (" +
                                    std::to_string(r.chunk_size / 4) + " bytes)");
  } else if (QueuedEnd(r.handle, meta->length) + r.length > r.chunk_size) {
    // Does not fit: pad the chunk to its full size on every replica, then
    // send the client to the next chunk (after the appends queued before).
    FlushAppends();
    s = ApplyLocal(static_cast<uint8_t>(MutationKind::kPad), r.handle, r.chunk_size, 0, nullptr);
    pw.kind = PendingWrite::kPad;
    a.kind = static_cast<uint8_t>(MutationKind::kPad);
    a.offset = r.chunk_size;
    stats_.counters[Counter::kAppendPads]++;
  } else {
    pw.kind = PendingWrite::kAppend;
    pw.offset = QueuedEnd(r.handle, meta->length);
    a.kind = static_cast<uint8_t>(MutationKind::kWrite);
    a.offset = pw.offset;
    a.length = r.length;
    if (pe == nullptr || pe->rejected || pe->received != pe->total || pe->total != r.length) {
      s = Status(Code::kDataMissing, "pushed data not (fully) received");
    } else {
      s = RoomFor(r.handle, pw.offset + r.length);
    }
    if (s.ok()) {
      // Queued: written with the other appends of this batch (FlushAppends).
      stats_.counters[Counter::kAppendsPrimary]++;
      lease_used_.insert(r.handle);
      QueuedAppend q;
      q.pw = std::move(pw);
      q.a = a;
      q.secondaries = r.secondaries;
      q.push = std::move(push->second);
      push_held_ -= q.push.held;
      pushes_.erase(push);
      queued_end_[r.handle] = q.pw.offset + r.length;
      q.deadline_us = m.h.deadline_ms == 0 ? 0 : Now() + uint64_t{m.h.deadline_ms} * 1000;
      queued_appends_[r.handle].push_back(std::move(q));
      return;
    }
  }
  if (push != pushes_.end()) {
    if (pw.kind == PendingWrite::kPad) {
      // The record goes to the next chunk: its client appends it there under
      // the same data id when that chunk has the same replicas (no second
      // push), so keep the data a little while.
      KeepBounced(&push->second);
    } else {
      push_held_ -= push->second.held;
      pushes_.erase(push);
    }
  }
  if (!s.ok()) return Reply(m, MutationError(r.handle, s));
  lease_used_.insert(r.handle);
  Replicate(std::move(pw), a, r.secondaries);
}

uint64_t ChunkServer::QueuedEnd(uint64_t handle, uint64_t length) const {
  auto it = queued_end_.find(handle);
  return it == queued_end_.end() ? length : it->second;
}

void ChunkServer::FlushAppends() {
  if (queued_appends_.empty()) return;
  DrainApply();
  auto queued = std::move(queued_appends_);
  queued_appends_.clear();
  queued_end_.clear();
  const uint64_t now = Now();
  for (auto& [handle, all] : queued) {
    // An append whose client gave up meanwhile is answered kTimeout, not
    // written late; the others close up behind it (nothing of them has been
    // written or sent yet, and they now need less room than was checked).
    const uint64_t start = all.front().pw.offset;
    uint64_t next = start;
    std::vector<QueuedAppend*> items;
    for (QueuedAppend& q : all) {
      if (q.deadline_us != 0 && now >= q.deadline_us) {
        Reply(q.pw.client_req, Status::Timeout("the append's deadline passed while it waited"));
        continue;
      }
      q.pw.offset = next;
      q.a.offset = next;
      next += q.a.length;
      items.push_back(&q);
    }
    if (items.empty()) continue;
    std::vector<ConstSlice> slices;
    uint64_t bytes = 0;
    for (const QueuedAppend* q : items) {
      for (const auto& sl : q->push.slices) slices.push_back({sl.second.data, sl.second.size});
      bytes += q->a.length;
    }
    // One write for the records, which lie back to back from the chunk's end.
    Status s = store_.Write(handle, start, slices);
    if (!s.ok()) s = MutationError(handle, s);
    if (s.ok()) {
      stats_.counters[Counter::kBytesWritten] += bytes;
      stats_.counters[Counter::kAppendBatches]++;
    }
    for (QueuedAppend* q : items) {
      if (!s.ok()) {
        Reply(q->pw.client_req, s);
      } else {
        Replicate(std::move(q->pw), q->a, q->secondaries);
      }
    }
  }
}

void ChunkServer::OnCommitted(Message& m) {
  CommittedReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  auto meta = store_.Meta(r.handle);
  if (!meta.ok()) return Reply(m, meta.status());
  CommittedReply rep;
  auto lease = leases_.find(r.handle);
  rep.primary = lease != leases_.end() && lease->second > Now();
  rep.length = meta->length;
  rep.committed = CommittedOf(r.handle);
  LogIfSendFailed(SendReply(t_, m, rep), "an append reply");
}
}  // namespace gfs
