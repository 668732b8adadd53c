// ChunkServer: mutations in the primary's serial order. The primary checks
// its lease, applies a write locally, forwards it (kApply) to the
// secondaries and answers the client once they all have; a secondary applies
// what the primary orders.
#include <algorithm>

#include "chunk/chunk_server.h"

namespace gfs {

Status ChunkServer::ApplyLocal(uint8_t kind, uint64_t handle, uint64_t offset, uint64_t length,
                               const PushEntry* push) {
  if (kind == static_cast<uint8_t>(MutationKind::kTruncate)) {
    GFS_RETURN_IF_ERROR(RoomFor(handle, offset));
    return store_.Truncate(handle, offset);
  }
  if (kind == static_cast<uint8_t>(MutationKind::kPad)) {
    // Extend with zeros to the chunk's full size (never shrink).
    auto meta = store_.Meta(handle);
    if (!meta.ok()) return meta.status();
    if (meta->length >= offset) return Status::OK();
    GFS_RETURN_IF_ERROR(RoomFor(handle, offset));
    stats_.counters[Counter::kPadBytes] += offset - meta->length;
    return store_.Truncate(handle, offset);
  }
  if (kind != static_cast<uint8_t>(MutationKind::kWrite)) {
    return Status::Protocol("unknown mutation kind " + std::to_string(kind));
  }
  if (push == nullptr || push->rejected || push->received != push->total || push->total != length) {
    return Status(Code::kDataMissing, "pushed data not (fully) received");
  }
  GFS_RETURN_IF_ERROR(RoomFor(handle, offset + length));
  std::vector<ConstSlice> slices;
  slices.reserve(push->slices.size());
  for (const auto& s : push->slices) slices.push_back({s.second.data, s.second.size});
  Status s = store_.Write(handle, offset, slices);
  if (s.ok()) stats_.counters[Counter::kBytesWritten] += length;
  return s;
}

void ChunkServer::OnWrite(Message& m) {
  WriteReq w;
  Status s = m.Decode(&w);
  // The data's checksums are taken while the write before may still be
  // under way in the apply thread; the store is used only after it is done.
  if (s.ok()) PrepareWrite(m.source, w.data_id, w.kind);
  DrainApply();
  if (!s.ok()) return Reply(m, s);
  s = CheckPrimary(w.handle, w.version);
  if (!s.ok()) return Reply(m, s);
  if (w.offset + w.length > (1ull << 40)) return Reply(m, Status::InvalidArgument("offset"));
  PushKey key{m.source, w.data_id};
  auto push = pushes_.find(key);
  // Applied here, then forwarded to the secondaries in serial order.
  auto applied = [this, m, w](const Status& st) {
    if (!st.ok()) return Reply(m, MutationError(w.handle, st));
    stats_.counters[Counter::kMutationsPrimary]++;
    lease_used_.insert(w.handle);
    PendingWrite pw;
    pw.kind = PendingWrite::kWrite;
    pw.client_req = m;
    pw.handle = w.handle;
    ApplyReq a;
    a.handle = w.handle;
    a.version = w.version;
    a.kind = w.kind;
    a.offset = w.offset;
    a.length = w.length;
    a.origin = m.source;
    a.data_id = w.data_id;
    Replicate(std::move(pw), a, w.secondaries);
  };
  if (w.kind == static_cast<uint8_t>(MutationKind::kWrite)) {
    // The data is written in the apply thread; `applied` runs once it is.
    PushEntry taken;
    const bool have = push != pushes_.end();
    if (have) {
      taken = std::move(push->second);
      pushes_.erase(push);
    }
    return ApplyWrite(w.handle, w.offset, w.length, have ? &taken : nullptr, std::move(applied));
  }
  const PushEntry* pe = push == pushes_.end() ? nullptr : &push->second;
  s = ApplyLocal(w.kind, w.handle, w.offset, w.length, pe);
  if (push != pushes_.end()) {
    push_held_ -= push->second.held;
    pushes_.erase(push);
  }
  applied(s);
}

void ChunkServer::PrepareWrite(int origin, uint64_t data_id, uint8_t kind) {
  if (kind != static_cast<uint8_t>(MutationKind::kWrite)) return;
  auto push = pushes_.find(PushKey{origin, data_id});
  if (push == pushes_.end() || push->second.rejected ||
      push->second.received != push->second.total) {
    return;
  }
  TakePieceCrcs(&push->second);
}

Status ChunkServer::CheckPrimary(uint64_t handle, uint64_t version) {
  auto meta = store_.Meta(handle);
  if (!meta.ok()) return meta.status();
  if (meta->version != version) {
    return Status(Code::kStaleVersion, "chunk version " + std::to_string(meta->version) +
                                           ", request for " + std::to_string(version));
  }
  auto lease = leases_.find(handle);
  if (lease == leases_.end()) return Status(Code::kNotPrimary, "no lease on this chunk");
  if (lease->second <= Now()) {
    // Expired by our clock (which runs ahead of the master's, or jumped):
    // the next heartbeat asks the master to extend it, if it still counts us
    // as the primary. Meanwhile the client retries.
    lease_used_.insert(handle);
    return Status(Code::kNotPrimary, "the lease on this chunk expired");
  }
  return Status::OK();
}

void ChunkServer::Replicate(PendingWrite pw, ApplyReq a, const std::vector<int32_t>& secondaries) {
  a.serial = ++next_serial_[a.handle];
  mutations_in_flight_[pw.handle]++;  // until Complete (a lease revocation waits)
  if (pw.kind == PendingWrite::kAppend) appends_in_flight_[pw.handle].insert(pw.offset);
  if (secondaries.empty()) return Complete(pw, Status::OK());
  const std::vector<int> dests(secondaries.begin(), secondaries.end());
  calls_.FanOut(dests, a, cfg_.request_timeout_ms, FanRule::All(),
                [this, pw = std::move(pw)](const FanResult& r) {
                  OnPeerReply(std::any_of(r.results.begin(), r.results.end(),
                                          [](const Result<Message>& m) { return m.ok(); }));
                  // The first secondary that refused names the error; one
                  // that never answered (or could not be sent to) makes it
                  // a timeout.
                  Status s;
                  for (size_t i = 0; i < r.results.size(); ++i) {
                    const Result<Message>& m = r.results[i];
                    if (!m.ok()) {
                      s = Status::Timeout("a secondary did not answer in time");
                      break;
                    }
                    const Status peer = m->status();
                    if (!peer.ok() && s.ok()) {
                      s = Status(peer.code(), "secondary rank " + std::to_string(r.dests[i]) +
                                                  ": " + peer.message());
                    }
                  }
                  Complete(pw, s);
                });
}

void ChunkServer::OnPeerReply(bool answered) {
  DrainApply();
  if (answered) last_io_us_ = Now();
  FlushAppends();
}

void ChunkServer::Complete(const PendingWrite& pw, const Status& s) {
  MutationDone(pw.handle);
  if (pw.kind == PendingWrite::kAppend) {
    auto f = appends_in_flight_.find(pw.handle);
    if (f != appends_in_flight_.end()) {
      auto pos = f->second.find(pw.offset);
      if (pos != f->second.end()) f->second.erase(pos);
      if (f->second.empty()) appends_in_flight_.erase(f);
    }
  }
  if (!s.ok()) {
    Reply(pw.client_req, s);
  } else if (pw.kind == PendingWrite::kAppend) {
    LogIfSendFailed(SendReply(t_, pw.client_req, AppendReply{pw.offset}), "an append reply");
  } else if (pw.kind == PendingWrite::kPad) {
    // Every replica is padded (and, being in serial order, has applied every
    // earlier append of this chunk): the client moves to the next chunk.
    Reply(pw.client_req, Status(Code::kRetryNextChunk, "chunk full"));
  } else {
    Reply(pw.client_req, Status::OK());
  }
}

void ChunkServer::OnApply(Message& m) {
  ApplyReq a;
  Status s = m.Decode(&a);
  if (s.ok()) PrepareWrite(a.origin, a.data_id, a.kind);  // as in OnWrite
  DrainApply();
  if (!s.ok()) return Reply(m, s);
  auto meta = store_.Meta(a.handle);
  if (!meta.ok()) return Reply(m, meta.status());
  if (meta->version != a.version) {
    return Reply(
        m, Status(Code::kStaleVersion, "replica at version " + std::to_string(meta->version)));
  }
  PushKey key{a.origin, a.data_id};
  auto push = pushes_.find(key);
  auto applied = [this, m, handle = a.handle](const Status& st) {
    if (st.ok()) stats_.counters[Counter::kMutationsSecondary]++;
    Reply(m, st.ok() ? st : MutationError(handle, st));
  };
  if (a.kind == static_cast<uint8_t>(MutationKind::kWrite)) {
    // Written in the apply thread, in the order the primary's orders came.
    PushEntry taken;
    const bool have = push != pushes_.end();
    if (have) {
      taken = std::move(push->second);
      pushes_.erase(push);
    }
    return ApplyWrite(a.handle, a.offset, a.length, have ? &taken : nullptr, std::move(applied));
  }
  const PushEntry* pe = push == pushes_.end() ? nullptr : &push->second;
  s = ApplyLocal(a.kind, a.handle, a.offset, a.length, pe);
  if (push != pushes_.end() && a.kind == static_cast<uint8_t>(MutationKind::kPad)) {
    KeepBounced(&push->second);        // the record's next try may use it (OnAppend)
  } else if (push != pushes_.end()) {  // consumed, or failed: never to be used
    push_held_ -= push->second.held;
    pushes_.erase(push);
  }
  applied(s);
}

Status ChunkServer::MutationError(uint64_t handle, const Status& s) {
  if (s.code() != Code::kCorruption) return s;
  // A damaged block in the way (e.g. a partial overwrite of it): the replica
  // is reported and repaired from a good copy; the client tries again.
  ReportCorrupt(handle, {});
  return Status::Unavailable("replica on chunkserver " + dir_ + " is damaged (" + s.message() +
                             "); it is being repaired");
}

}  // namespace gfs
