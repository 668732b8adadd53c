// Mutations: writes, record appends and truncations (lease lookup, the data
// pushed along the chain, the request to the primary, retries).
#include <algorithm>

#include "io/client.h"
#include "io/client/retry.h"
#include "mpi/transport/buffer_pool.h"

namespace gfs {

Status Client::PushSend(const std::vector<int32_t>& chain, uint64_t data_id, const uint8_t* data,
                        size_t n) {
  Transport* t = rpc_.transport();
  const int head = chain.front();
  PushDataMsg p;
  p.origin = t->rank();
  p.data_id = data_id;
  p.total = n;
  p.chain = chain;
  const size_t slice = std::max<size_t>(cfg_.slice_size, 4096);
  const uint64_t window = 4ull * slice;
  for (size_t off = 0; off < n; off += slice) {
    // Keep a few slices in flight to the head of the chain, no more.
    while (t->PendingBytesTo(head) > window) PumpOrIdle();
    p.offset = off;
    size_t len = std::min(slice, n - off);
    Header h;
    h.type = static_cast<uint16_t>(PushDataMsg::kType);
    h.deadline_ms = cfg_.request_timeout_ms;
    // The slice's bytes (the message's last field) go from the caller's
    // memory as the message's tail, not copied into it; the caller waits for
    // such sends before its buffer is given back (TailGuard).
    p.bytes = BlobView{nullptr, 0};
    auto msg = TakeBuffer(0, 256 + 4 * p.chain.size());
    EncodeMessageInto(msg, h, p);
    AnnounceTail(msg.get(), static_cast<uint32_t>(len));
    GFS_RETURN_IF_ERROR(t->SendWithTail(head, std::move(msg), data + off, len));
    stats_.counters["push_bytes_sent"] += len;
  }
  return Status::OK();
}

bool Client::TakePushAck(uint64_t data_id, Status* s) {
  auto it = push_acks_.find(data_id);
  if (it == push_acks_.end()) return false;
  Code c = static_cast<Code>(it->second);
  push_acks_.erase(it);
  *s = c == Code::kOk ? Status::OK() : Status(c, "data push refused by a chunkserver");
  return true;
}

Status Client::Mutate(File* f, uint32_t index, const CachedLease& lease, uint8_t kind,
                      uint64_t offset, const uint8_t* data, size_t n) {
  (void)f;
  (void)index;
  (void)data;
  WriteReq w;
  w.handle = lease.handle;
  w.version = lease.version;
  w.kind = kind;
  w.offset = offset;
  w.length = n;
  w.data_id = ++next_data_id_;
  w.secondaries = Secondaries(lease);
  Empty rep;
  return rpc_.Call(lease.primary, w, &rep, cfg_.request_timeout_ms);
}

Status Client::Write(File* f, uint64_t offset, const void* data, size_t n,
                     const ProgressFn& progress) {
  TailGuard tails{this};  // `data` is sent in place: wait for it before returning
  ForgetStream(f->id);    // bytes read ahead may be overwritten now
  // Cut the range into mutations (never across a chunk boundary) and keep up
  // to write_window of them in flight: while one is being applied, the next
  // one's data is already flowing down its chain.
  struct Op {
    uint32_t index = 0;
    uint64_t chunk_off = 0;
    const uint8_t* data = nullptr;
    size_t len = 0;
    // kPushing: the data is on its way down the chain; kWriting: the write
    // request is out to the primary.
    enum State { kNew, kPushing, kWriting, kDone } state = kNew;
    int attempts = 0;
    uint64_t not_before_us = 0, first_failure_us = 0;
    uint64_t data_id = 0;
    uint64_t deadline_us = 0;
    uint64_t req_id = 0;
    CachedLease lease;
    Status last;
  };
  const auto* p = static_cast<const uint8_t*>(data);
  std::vector<Op> ops;
  for (size_t done = 0; done < n;) {
    uint64_t pos = offset + done;
    Op op;
    op.index = static_cast<uint32_t>(pos / f->chunk_size);
    op.chunk_off = pos % f->chunk_size;
    op.len = std::min<uint64_t>({n - done, f->chunk_size - op.chunk_off, cfg_.write_op_size});
    op.data = p + done;
    ops.push_back(op);
    done += op.len;
  }
  const size_t window = std::max<uint32_t>(cfg_.write_window, 1);
  const uint64_t timeout_us = static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000;
  size_t inflight = 0, completed = 0;
  uint64_t bytes_done = 0;
  // A failed attempt: retry later if the error allows, else give up.
  auto fail = [&](Op& op, Status s) -> Status {
    if (op.state == Op::kWriting) rpc_.Forget(op.req_id);
    push_acks_.erase(op.data_id);
    --inflight;
    leases_.erase({f->id, op.index});
    op.last = s;
    op.attempts++;
    op.state = Op::kNew;
    stats_.counters["write_retries"]++;
    if (!Retryable(s.code()) ||
        !RetryLater(op.attempts, &op.first_failure_us, timeout_us, &op.not_before_us)) {
      return s;
    }
    return Status::OK();
  };
  auto complete = [&](Op& op) {
    op.state = Op::kDone;
    push_acks_.erase(op.data_id);
    --inflight;
    ++completed;
    f->dirty[op.lease.handle] = op.lease.replicas;
    bytes_done += op.len;
    if (progress) progress(bytes_done);
  };
  // Sends the write request of a pushed op to its primary.
  auto start_write = [&](Op& op) -> Status {
    WriteReq w;
    w.handle = op.lease.handle;
    w.version = op.lease.version;
    w.kind = static_cast<uint8_t>(MutationKind::kWrite);
    w.offset = op.chunk_off;
    w.length = op.len;
    w.data_id = op.data_id;
    w.secondaries = Secondaries(op.lease);
    auto id = rpc_.Start(op.lease.primary, w, cfg_.request_timeout_ms);
    if (!id.ok()) return fail(op, id.status());
    op.req_id = *id;
    op.state = Op::kWriting;
    return Status::OK();
  };
  while (completed < ops.size()) {
    uint64_t now = MonoMicros();
    for (Op& op : ops) {
      if (inflight >= window) break;
      if (op.state != Op::kNew || now < op.not_before_us) continue;
      auto lease = GetLease(f, op.index);
      if (!lease.ok()) {
        ++inflight;
        GFS_RETURN_IF_ERROR(fail(op, lease.status()));
        continue;
      }
      op.lease = *lease;
      op.deadline_us = MonoMicros() + timeout_us;
      ++inflight;
      op.data_id = ++next_data_id_;
      op.state = Op::kPushing;
      Status s = PushSend(OrderByDistance(op.lease.replicas, rpc_.transport()->rank()), op.data_id,
                          op.data, op.len);
      if (!s.ok()) {
        GFS_RETURN_IF_ERROR(fail(op, s));
      } else if (op.lease.replicas.size() == 1 && op.lease.replicas[0] == op.lease.primary) {
        // The primary is the whole chain: the request follows the data on
        // the same ordered channel, so it needs no push-ack round trip first
        // (a push the primary refused makes the write fail with kDataMissing,
        // which is retried). The ack still comes; it is dropped at the end.
        stats_.counters["writes_without_push_ack"]++;
        GFS_RETURN_IF_ERROR(start_write(op));
      }
    }
    PumpOrIdle();
    now = MonoMicros();
    for (Op& op : ops) {
      if (op.state == Op::kPushing) {
        Status pushed;
        if (TakePushAck(op.data_id, &pushed)) {
          if (!pushed.ok()) {
            GFS_RETURN_IF_ERROR(fail(op, pushed));
            continue;
          }
          GFS_RETURN_IF_ERROR(start_write(op));
        } else if (now > op.deadline_us) {
          GFS_RETURN_IF_ERROR(fail(op, Status::Timeout("data push was not acknowledged")));
        }
      } else if (op.state == Op::kWriting) {
        Result<Message> r = Status::Internal("unset");
        if (!rpc_.TryTake(op.req_id, &r)) continue;
        Status s = r.ok() ? r->status() : r.status();
        if (!s.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, s));
          continue;
        }
        complete(op);
      }
    }
  }
  if (n > 0) NoteEnd(f, offset + n);
  return Status::OK();
}

Result<uint64_t> Client::RecordAppend(File* f, const void* data, size_t n) {
  std::vector<uint64_t> offsets;
  GFS_RETURN_IF_ERROR(RecordAppendMany(f, {Span{data, n}}, &offsets));
  return offsets[0];
}

Status Client::RecordAppendMany(File* f, const std::vector<Span>& records,
                                std::vector<uint64_t>* offsets) {
  TailGuard tails{this};  // the records are sent in place
  ForgetStream(f->id);
  struct Op {
    enum State { kNew, kPushing, kAppending, kDone } state = kNew;
    uint32_t index = 0;
    CachedLease lease;
    uint64_t data_id = 0, req_id = 0, deadline_us = 0, not_before_us = 0;
    uint64_t first_failure_us = 0;
    int failures = 0, hops = 0;
    // After a bounce to the next chunk: the replicas (sorted) that still hold
    // the pushed data under data_id. Empty: push again.
    std::vector<int32_t> pushed_to;
    uint64_t bytes = 0;  // counted in inflight_bytes while in flight
  };
  const uint64_t limit = f->chunk_size / 4;
  for (const Span& r : records) {
    if (r.size > limit) {
      return Status(Code::kTooLarge, "a record of " + std::to_string(r.size) +
                                         " bytes is over the limit of " + std::to_string(limit) +
                                         " bytes (a quarter of the chunk size)");
    }
  }
  offsets->assign(records.size(), 0);
  std::vector<Op> ops(records.size());
  const size_t window = std::max<uint32_t>(cfg_.append_window, 1);
  const uint64_t timeout_us = static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000;
  size_t inflight = 0, completed = 0;
  // Bytes in flight are capped at 1/16 of a chunk as well: everything in
  // flight when a chunk fills bounces to the next one (an extra round trip
  // each, and a wait for the new chunk), and with many producers a window of
  // records per producer would keep several chunks' worth in flight.
  const uint64_t byte_cap = std::max<uint64_t>(f->chunk_size / 16, 1);
  uint64_t inflight_bytes = 0;
  auto landed = [&](Op& op) {
    --inflight;
    inflight_bytes -= op.bytes;
    op.bytes = 0;
  };
  auto fail = [&](Op& op, Status s) -> Status {
    if (op.state == Op::kAppending) rpc_.Forget(op.req_id);
    landed(op);
    leases_.erase({f->id, op.index});
    f->append_index = File::kUnknownIndex;
    op.state = Op::kNew;
    op.pushed_to.clear();
    op.failures++;
    stats_.counters["append_retries"]++;
    if (!Retryable(s.code()) ||
        !RetryLater(op.failures, &op.first_failure_us, timeout_us, &op.not_before_us)) {
      return s;
    }
    return Status::OK();
  };
  while (completed < ops.size()) {
    uint64_t now = MonoMicros();
    for (size_t i = 0; i < ops.size() && inflight < window; ++i) {
      Op& op = ops[i];
      if (op.state != Op::kNew || now < op.not_before_us) continue;
      if (inflight > 0 && inflight_bytes + records[i].size > byte_cap) break;
      ++inflight;
      op.bytes = records[i].size;
      inflight_bytes += op.bytes;
      if (f->append_index == File::kUnknownIndex) {
        LeaseReq req;
        req.path = f->path;
        req.file_id = f->id;
        req.append = true;
        LeaseReply rep;
        Status s = MasterCall(req, &rep);
        if (!s.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, s));
          continue;
        }
        CachedLease l;
        l.handle = rep.handle;
        l.version = rep.version;
        l.primary = rep.primary;
        l.replicas = rep.replicas;
        l.expires_us = MonoMicros() + static_cast<uint64_t>(rep.lease_ms) * 500;
        leases_[{f->id, rep.index}] = l;
        f->append_index = rep.index;
      }
      op.index = f->append_index;
      auto lease = GetLease(f, op.index);
      if (!lease.ok()) {
        GFS_RETURN_IF_ERROR(fail(op, lease.status()));
        continue;
      }
      op.lease = *lease;
      op.deadline_us = MonoMicros() + timeout_us;
      op.state = Op::kPushing;
      if (!op.pushed_to.empty()) {
        std::vector<int32_t> now_on = op.lease.replicas;
        std::sort(now_on.begin(), now_on.end());
        if (now_on == op.pushed_to) {
          // Bounced from a full chunk and the next chunk has the same
          // replicas: they kept the data, so only the append is sent again.
          op.pushed_to.clear();
          push_acks_[op.data_id] = 0;
          stats_.counters["append_push_reused"]++;
          continue;
        }
        op.pushed_to.clear();
      }
      op.data_id = ++next_data_id_;
      Status s = PushSend(OrderByDistance(op.lease.replicas, rpc_.transport()->rank()), op.data_id,
                          static_cast<const uint8_t*>(records[i].data), records[i].size);
      if (!s.ok()) GFS_RETURN_IF_ERROR(fail(op, s));
    }
    PumpOrIdle();
    now = MonoMicros();
    for (size_t i = 0; i < ops.size(); ++i) {
      Op& op = ops[i];
      if (op.state == Op::kPushing) {
        Status pushed;
        if (!TakePushAck(op.data_id, &pushed)) {
          if (now > op.deadline_us) {
            GFS_RETURN_IF_ERROR(fail(op, Status::Timeout("data push was not acknowledged")));
          }
          continue;
        }
        if (!pushed.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, pushed));
          continue;
        }
        AppendReq req;
        req.handle = op.lease.handle;
        req.version = op.lease.version;
        req.chunk_size = f->chunk_size;
        req.length = records[i].size;
        req.data_id = op.data_id;
        req.secondaries = Secondaries(op.lease);
        auto id = rpc_.Start(op.lease.primary, req, cfg_.request_timeout_ms);
        if (!id.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, id.status()));
          continue;
        }
        op.req_id = *id;
        op.state = Op::kAppending;
      } else if (op.state == Op::kAppending) {
        Result<Message> r = Status::Internal("unset");
        if (!rpc_.TryTake(op.req_id, &r)) continue;
        Status s = r.ok() ? r->status() : r.status();
        AppendReply rep;
        if (s.ok()) s = r->Decode(&rep);
        const uint64_t at = rep.offset;
        if (s.code() == Code::kRetryNextChunk) {
          // The chunk is full: this record goes to the next one.
          landed(op);
          op.pushed_to = op.lease.replicas;
          std::sort(op.pushed_to.begin(), op.pushed_to.end());
          op.state = Op::kNew;
          if (++op.hops > 64) return Status::Internal("record append kept finding full chunks");
          if (f->append_index == File::kUnknownIndex || f->append_index <= op.index) {
            f->append_index = op.index + 1;
          }
          stats_.counters["append_next_chunk"]++;
          continue;
        }
        if (!s.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, s));
          continue;
        }
        landed(op);
        ++completed;
        op.state = Op::kDone;
        uint64_t off = static_cast<uint64_t>(op.index) * f->chunk_size + at;
        (*offsets)[i] = off;
        NoteEnd(f, off + records[i].size);
        f->dirty[op.lease.handle] = op.lease.replicas;
        stats_.counters["records_appended"]++;
      }
    }
  }
  return Status::OK();
}

Status Client::Truncate(File* f, uint64_t length) {
  ForgetStream(f->id);
  unreported_.erase(f->id);  // the truncation sets the length
  SetLengthReq req;
  req.path = f->path;
  req.file_id = f->id;
  req.length = length;
  req.grow_only = false;
  SetLengthReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  f->length = rep.length;
  for (auto it = locs_.begin(); it != locs_.end();) {
    it = it->first.first == f->id ? locs_.erase(it) : std::next(it);
  }
  if (length % f->chunk_size == 0 || rep.last.handle == 0) return Status::OK();
  uint32_t index = rep.last.index;
  Status last;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    auto lease = GetLease(f, index);
    if (!lease.ok()) return lease.status();
    last = Mutate(f, index, *lease, static_cast<uint8_t>(MutationKind::kTruncate),
                  length % f->chunk_size, nullptr, 0);
    if (last.ok()) {
      f->dirty[lease->handle] = lease->replicas;
      return last;
    }
    leases_.erase({f->id, index});
    if (!Retryable(last.code())) return last;
  }
  return last;
}

}  // namespace gfs
