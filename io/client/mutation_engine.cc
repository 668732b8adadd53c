#include "io/client/mutation_engine.h"

#include <algorithm>

#include "mpi/transport/buffer_pool.h"

namespace gfs {

MutationEngine::MutationEngine(Client* c, File* f, const RetryPolicy& policy, size_t window,
                               uint64_t byte_cap)
    : c_(c),
      f_(f),
      policy_(policy),
      window_(std::max<size_t>(window, 1)),
      byte_cap_(byte_cap),
      timeout_us_(static_cast<uint64_t>(c->cfg_.request_timeout_ms) * 1000) {}

Status MutationEngine::Run(std::vector<Mutation>* ops) {
  for (Mutation& op : *ops) op.retry = Retry(policy_);
  while (completed_ < ops->size()) {
    uint64_t now = c_->env_->NowMicros();
    for (Mutation& op : *ops) {
      if (inflight_ >= window_) break;
      if (op.state != Mutation::State::kNew || !op.retry.Due(now)) continue;
      if (byte_cap_ > 0 && inflight_ > 0 && inflight_bytes_ + op.len > byte_cap_) break;
      GFS_RETURN_IF_ERROR(Start(op));
    }
    c_->PumpOrIdle();
    now = c_->env_->NowMicros();
    for (Mutation& op : *ops) GFS_RETURN_IF_ERROR(Poll(op, now));
  }
  return Status::OK();
}

Status MutationEngine::Start(Mutation& op) {
  ++inflight_;
  op.bytes = op.len;
  inflight_bytes_ += op.bytes;
  if (op.kind == Mutation::Kind::kAppend) {
    // Appends go to the chunk the master names as the file's last, until
    // one bounces off it full.
    if (f_->append_index == File::kUnknownIndex) {
      auto index = c_->GetAppendLease(f_);
      if (!index.ok()) return Fail(op, index.status());
      f_->append_index = *index;
    }
    op.index = f_->append_index;
  }
  auto lease = c_->GetLease(f_, op.index);
  if (!lease.ok()) return Fail(op, lease.status());
  op.lease = *lease;
  op.deadline_us = c_->env_->NowMicros() + timeout_us_;
  if (op.kind == Mutation::Kind::kTruncate) {
    // No data: the request goes to the primary at once.
    op.data_id = ++c_->next_data_id_;
    return Order(op);
  }
  op.state = Mutation::State::kPushing;
  if (!op.pushed_to.empty()) {
    std::vector<int32_t> now_on = op.lease.replicas;
    std::sort(now_on.begin(), now_on.end());
    if (now_on == op.pushed_to) {
      // Bounced from a full chunk and the next chunk has the same
      // replicas: they kept the data, so only the append is sent again.
      op.pushed_to.clear();
      c_->push_acks_[op.data_id] = Client::PushAcks{0, op.acks_needed};
      c_->stats_.counters[Counter::kAppendPushReused]++;
      return Status::OK();
    }
    op.pushed_to.clear();
  }
  op.data_id = ++c_->next_data_id_;
  Status s = PushSend(op);
  if (!s.ok()) return Fail(op, s);
  if (op.kind == Mutation::Kind::kWrite && op.lease.replicas.size() == 1 &&
      op.lease.replicas[0] == op.lease.primary) {
    // The primary is the whole chain: the request follows the data on the
    // same ordered channel, so it needs no push-ack round trip first (a push
    // the primary refused makes the write fail with kDataMissing, which is
    // retried). The ack still comes; it is dropped when the op completes.
    c_->stats_.counters[Counter::kWritesWithoutPushAck]++;
    return Order(op);
  }
  return Status::OK();
}

Status MutationEngine::Poll(Mutation& op, uint64_t now) {
  if (op.state == Mutation::State::kPushing) {
    Status pushed;
    if (!TakePushAck(op, &pushed)) {
      if (now > op.deadline_us) return Fail(op, Status::Timeout("data push was not acknowledged"));
      return Status::OK();
    }
    if (!pushed.ok()) return Fail(op, pushed);
    return Order(op);
  }
  if (op.state != Mutation::State::kOrdering) return Status::OK();
  Result<Message> r = Status::Internal("unset");
  if (!c_->rpc_.TryTake(op.req_id, &r)) return Status::OK();
  Status s = r.ok() ? r->status() : r.status();
  if (op.kind != Mutation::Kind::kAppend) {
    if (!s.ok()) return Fail(op, s);
    Complete(op);
    return Status::OK();
  }
  AppendReply rep;
  if (s.ok()) s = r->Decode(&rep);
  if (s.code() == Code::kRetryNextChunk) {
    // The chunk is full: this record goes to the next one.
    Landed(op);
    op.pushed_to = op.lease.replicas;
    std::sort(op.pushed_to.begin(), op.pushed_to.end());
    op.state = Mutation::State::kNew;
    if (++op.hops > 64) return Status::Internal("record append kept finding full chunks");
    if (f_->append_index == File::kUnknownIndex || f_->append_index <= op.index) {
      f_->append_index = op.index + 1;
    }
    c_->stats_.counters[Counter::kAppendNextChunk]++;
    return Status::OK();
  }
  if (!s.ok()) return Fail(op, s);
  op.file_offset = static_cast<uint64_t>(op.index) * f_->chunk_size + rep.offset;
  c_->NoteEnd(f_, op.file_offset + op.len);
  c_->stats_.counters[Counter::kRecordsAppended]++;
  Complete(op);
  return Status::OK();
}

Status MutationEngine::Order(Mutation& op) {
  Result<uint64_t> id = Status::Internal("unset");
  if (op.kind == Mutation::Kind::kAppend) {
    AppendReq req;
    req.handle = op.lease.handle;
    req.version = op.lease.version;
    req.chunk_size = f_->chunk_size;
    req.length = op.len;
    req.data_id = op.data_id;
    req.secondaries = Secondaries(op.lease);
    id = c_->rpc_.Start(op.lease.primary, req, c_->cfg_.request_timeout_ms);
  } else {
    WriteReq w;
    w.handle = op.lease.handle;
    w.version = op.lease.version;
    w.kind = static_cast<uint8_t>(op.kind == Mutation::Kind::kWrite ? MutationKind::kWrite
                                                                    : MutationKind::kTruncate);
    w.offset = op.chunk_off;
    w.length = op.len;
    w.data_id = op.data_id;
    w.secondaries = Secondaries(op.lease);
    id = c_->rpc_.Start(op.lease.primary, w, c_->cfg_.request_timeout_ms);
  }
  if (!id.ok()) return Fail(op, id.status());
  op.req_id = *id;
  op.state = Mutation::State::kOrdering;
  return Status::OK();
}

Status MutationEngine::Fail(Mutation& op, const Status& s) {
  if (op.state == Mutation::State::kOrdering) c_->rpc_.Forget(op.req_id);
  c_->push_acks_.erase(op.data_id);
  Landed(op);
  c_->cache_->DropLease(f_->id, op.index);
  op.state = Mutation::State::kNew;
  switch (op.kind) {
    case Mutation::Kind::kWrite:
      c_->stats_.counters[Counter::kWriteRetries]++;
      break;
    case Mutation::Kind::kAppend:
      // Ask the master again which chunk is the last: this one may be gone.
      f_->append_index = File::kUnknownIndex;
      op.pushed_to.clear();
      c_->stats_.counters[Counter::kAppendRetries]++;
      break;
    case Mutation::Kind::kTruncate:
      break;
  }
  if (!Retryable(s.code()) || !op.retry.Failed(c_->env_->NowMicros())) return s;
  return Status::OK();
}

void MutationEngine::Complete(Mutation& op) {
  op.state = Mutation::State::kDone;
  c_->push_acks_.erase(op.data_id);
  Landed(op);
  ++completed_;
  f_->dirty[op.lease.handle] = op.lease.replicas;
  if (op.kind == Mutation::Kind::kWrite) {
    bytes_done_ += op.len;
    if (progress_) progress_(bytes_done_);
  }
}

void MutationEngine::Landed(Mutation& op) {
  --inflight_;
  inflight_bytes_ -= op.bytes;
  op.bytes = 0;
}

std::vector<int32_t> MutationEngine::Secondaries(const ChunkLease& lease) {
  std::vector<int32_t> out;
  for (int32_t r : lease.replicas) {
    if (r != lease.primary) out.push_back(r);
  }
  return out;
}

Status MutationEngine::PushSend(Mutation& op) {
  Transport* t = c_->rpc_.transport();
  const std::vector<int32_t> chain = c_->OrderByDistance(op.lease.replicas, t->rank());
  // Who gets the data from this client, and the forwarding list each push
  // carries: the chain's head with the whole chain, or (star) every replica
  // with an empty list, so that each keeps its copy and acks it.
  const bool star = c_->cfg_.push_mode == JobConfig::PushMode::kStar;
  const std::vector<int32_t> heads = star ? chain : std::vector<int32_t>{chain.front()};
  PushDataMsg p;
  p.origin = t->rank();
  p.data_id = op.data_id;
  p.total = op.len;
  if (!star) p.chain = chain;
  op.acks_needed = static_cast<uint32_t>(heads.size());
  c_->push_acks_[op.data_id] = Client::PushAcks{};
  const size_t slice = std::max<size_t>(c_->cfg_.slice_size, 4096);
  const uint64_t window = 4ull * slice;
  for (size_t off = 0; off < op.len; off += slice) {
    p.offset = off;
    const size_t len = std::min(slice, op.len - off);
    for (int32_t head : heads) {
      // Keep a few slices in flight to each receiver, no more.
      while (t->PendingBytesTo(head) > window) c_->PumpOrIdle();
      Header h;
      h.type = static_cast<uint16_t>(PushDataMsg::kType);
      h.deadline_ms = c_->cfg_.request_timeout_ms;
      // The slice's bytes (the message's last field) go from the caller's
      // memory as the message's tail, not copied into it; the caller waits
      // for such sends before its buffer is given back (Client::TailGuard).
      p.bytes = BlobView{nullptr, 0};
      auto msg = TakeBuffer(0, 256 + 4 * p.chain.size());
      EncodeMessageInto(msg, h, p);
      AnnounceTail(msg.get(), static_cast<uint32_t>(len));
      GFS_RETURN_IF_ERROR(t->SendWithTail(head, std::move(msg), op.data + off, len));
      c_->stats_.counters[Counter::kPushBytesSent] += len;
    }
  }
  return Status::OK();
}

bool MutationEngine::TakePushAck(const Mutation& op, Status* s) {
  auto it = c_->push_acks_.find(op.data_id);
  if (it == c_->push_acks_.end()) return false;
  const Code c = static_cast<Code>(it->second.status);
  if (c == Code::kOk && it->second.count < op.acks_needed) return false;
  c_->push_acks_.erase(it);
  *s = c == Code::kOk ? Status::OK() : Status(c, "data push refused by a chunkserver");
  return true;
}

}  // namespace gfs
