#include "io/client.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/crc32c.h"
#include "mpi/transport/buffer_pool.h"

namespace gfs {
namespace {

bool Retryable(Code c) {
  switch (c) {
    case Code::kNotPrimary:
    case Code::kStaleVersion:
    case Code::kTimeout:
    case Code::kUnavailable:
    case Code::kDataMissing:
    case Code::kBusy:
      return true;
    default:
      return false;
  }
}

constexpr int kMaxAttempts = 6;

// Retry budget of one write or append op: at least kMaxAttempts tries, and
// tries go on until one request timeout after the first failure (a fail-over
// or a chunkserver re-registering can take longer than quick retries last).
// Returns false when the op should give up; else sets when to try again
// (a backoff growing with the tries, at most half a second).
bool RetryLater(int failures, uint64_t* first_failure_us, uint64_t timeout_us,
                uint64_t* not_before_us) {
  const uint64_t now = MonoMicros();
  if (*first_failure_us == 0) *first_failure_us = now;
  if (failures >= kMaxAttempts && now - *first_failure_us >= timeout_us) return false;
  const uint64_t f = static_cast<uint64_t>(failures);
  *not_before_us = now + std::min<uint64_t>(20000ull * f * f, 500000);
  return true;
}

FileStat ToStat(const std::string& path, const FileAttr& a) {
  FileStat s;
  s.path = path;
  s.is_dir = a.is_dir;
  s.id = a.id;
  s.size = a.length;
  s.replication = a.replication;
  s.chunk_size = a.chunk_size;
  s.chunks = a.num_chunks;
  s.mtime_ms = a.mtime_ms;
  return s;
}

}  // namespace

Client::Client(Transport* t, const JobConfig& cfg, int master_rank, std::vector<HostId> hosts)
    : rpc_(t), cfg_(cfg), master_(master_rank), hosts_(std::move(hosts)) {
  rpc_.set_unsolicited([this](Message& m) { OnUnsolicited(m); });
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(cfg_.data_dir, ec);
  data_dir_abs_ = ec ? cfg_.data_dir : abs.lexically_normal().string();
  while (data_dir_abs_.size() > 1 && data_dir_abs_.back() == '/') data_dir_abs_.pop_back();
}

void Client::OnUnsolicited(Message& m) {
  if (m.type() == MsgType::kPushAck) {
    PushAckMsg a;
    if (m.Decode(&a).ok()) push_acks_[a.data_id] = a.status;
  } else if (m.type() == MsgType::kNewMaster) {
    NewMasterReq r;
    if (m.Decode(&r).ok() && r.epoch > master_epoch_ && r.master >= 0) {
      master_ = r.master;
      master_epoch_ = r.epoch;
      rpc_.set_epoch(r.epoch);
      stats_.counters["new_masters"]++;
    }
  }
}

bool Client::FindMaster(uint32_t timeout_ms) {
  // The master in question is not asked: the others know whether it leads.
  std::vector<uint64_t> ids;
  for (int r = 0; r <= cfg_.shadows; ++r) {
    if (r == master_) continue;
    auto id = rpc_.Start(r, WhoIsMasterReq{}, timeout_ms);
    if (id.ok()) ids.push_back(*id);
  }
  uint64_t best_epoch = master_epoch_;
  int best = -1;
  while (!ids.empty()) {
    uint64_t which = 0;
    auto m = rpc_.WaitAny(ids, &which);
    ids.erase(std::remove(ids.begin(), ids.end(), which), ids.end());
    if (!m.ok()) {
      if (m.status().code() == Code::kTimeout) break;  // the rest are silent too
      continue;
    }
    WhoIsMasterReply rep;
    if (!m->status().ok() || !m->Decode(&rep).ok() || rep.master < 0) continue;
    if (rep.epoch > best_epoch || (rep.epoch == best_epoch && best < 0)) {
      best_epoch = rep.epoch;
      best = rep.master;
    }
  }
  for (uint64_t id : ids) rpc_.Forget(id);
  if (best < 0 || (best == master_ && best_epoch == master_epoch_)) return false;
  const bool changed = best != master_;
  master_ = best;
  master_epoch_ = best_epoch;
  rpc_.set_epoch(best_epoch);
  if (changed) stats_.counters["master_failovers"]++;
  return changed;
}

Result<Message> Client::MasterRequest(const std::function<Result<uint64_t>(int, uint32_t)>& start,
                                      bool read_only, uint32_t timeout_ms) {
  if (cfg_.shadows <= 0) {
    auto id = start(master_, timeout_ms);
    if (!id.ok()) return id.status();
    return rpc_.Wait(*id);
  }
  // Fail-over. A silent master is not asked again (the request may still be
  // applied there); only a different master gets it, so a slow master does
  // not see the same mutation twice.
  const uint64_t deadline = MonoMicros() + static_cast<uint64_t>(timeout_ms) * 1000;
  const uint32_t probe_ms = std::max<uint32_t>(2 * cfg_.heartbeat_ms, 500);
  std::vector<std::pair<uint64_t, int>> live;  // (request id, rank)
  auto send = [&](int dest) {
    auto id = start(dest, timeout_ms);
    if (id.ok()) live.push_back({*id, dest});
  };
  send(master_);
  int target = master_;  // where the request went (shadows aside)
  uint64_t next_probe = MonoMicros() + probe_ms * 1000ull;
  bool tried_shadow = false;
  Status last = Status::Timeout("the master did not answer in time");
  for (;;) {
    for (size_t i = 0; i < live.size();) {
      Result<Message> out = Status::OK();
      if (!rpc_.TryTake(live[i].first, &out)) {
        ++i;
        continue;
      }
      const int from = live[i].second;
      live.erase(live.begin() + static_cast<long>(i));
      if (out.ok() && out->status().code() != Code::kNotMaster) {
        for (auto& [id, r] : live) rpc_.Forget(id);
        if (from != master_) stats_.counters["answered_by_shadow"]++;
        return out;
      }
      if (!out.ok()) {
        last = out.status();
      } else {
        last = out->status();
        next_probe = 0;  // "not the master": find the one that is, now
      }
    }
    const uint64_t now = MonoMicros();
    if (now >= deadline) break;
    if (now >= next_probe) {
      if (read_only && !tried_shadow && cfg_.shadows > 0) {
        // First offer a read to a shadow; ask who leads only if that does
        // not settle it either.
        tried_shadow = true;
        int shadow = 1 + (next_shadow_++ % cfg_.shadows);
        if (shadow == master_) shadow = 1 + (next_shadow_++ % cfg_.shadows);
        if (shadow != master_) send(shadow);
        next_probe = MonoMicros() + probe_ms * 1000ull;
        continue;
      }
      FindMaster(probe_ms);
      if (live.empty()) target = -1;  // refused ("not the master"): ask again
      next_probe = MonoMicros() + probe_ms * 1000ull;
    }
    // The master changed (announced, or found by asking): the request goes
    // to the new one; the old one is not waited for any more.
    if (master_ != target) {
      for (auto it = live.begin(); it != live.end();) {
        if (it->second == target) {
          rpc_.Forget(it->first);
          it = live.erase(it);
        } else {
          ++it;
        }
      }
      send(master_);
      target = master_;
      continue;
    }
    PumpOrIdle();
  }
  for (auto& [id, r] : live) rpc_.Forget(id);
  return last;
}

Status Client::Mkdir(const std::string& path, bool parents) {
  Empty rep;
  return MasterCall(MkdirReq{path, parents}, &rep);
}

Result<FileStat> Client::Stat(const std::string& path) {
  StatReq req;
  req.path = path;
  StatReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  FileStat st = ToStat(path, rep.attr);
  auto u = unreported_.find(st.id);
  if (u != unreported_.end()) st.size = std::max(st.size, u->second.end);  // our own writes
  return st;
}

Result<std::vector<FileStat>> Client::List(const std::string& path) {
  ListReq req;
  req.path = path;
  ListReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  std::vector<FileStat> out;
  out.reserve(rep.entries.size());
  for (const ListEntry& e : rep.entries) {
    out.push_back(ToStat(e.name, e.attr));
    auto u = unreported_.find(e.attr.id);
    if (u != unreported_.end()) out.back().size = std::max(out.back().size, u->second.end);
  }
  return out;
}

Status Client::Remove(const std::string& path, bool recursive) {
  Empty rep;
  return MasterCall(DeleteReq{path, recursive}, &rep);
}

Status Client::Rename(const std::string& src, const std::string& dst, bool replace) {
  // Lengths are reported under the path they were written at.
  GFS_RETURN_IF_ERROR(ReportLengthsUnder(src));
  Empty rep;
  return MasterCall(RenameReq{src, dst, replace}, &rep);
}

Result<File> Client::Create(const std::string& path, const CreateOptions& opts) {
  CreateReq req;
  req.path = path;
  req.replication = opts.replication;
  req.chunk_size = opts.chunk_size;
  req.exclusive = opts.exclusive;
  req.truncate = opts.truncate;
  StatReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  if (opts.truncate) unreported_.erase(rep.attr.id);  // cut to zero: older ends are gone
  File f;
  f.path = path;
  f.id = rep.attr.id;
  f.replication = rep.attr.replication;
  f.chunk_size = rep.attr.chunk_size;
  f.length = rep.attr.length;
  return f;
}

Result<File> Client::Open(const std::string& path) {
  auto st = Stat(path);
  if (!st.ok()) return st.status();
  if (st->is_dir) return Status(Code::kIsADirectory, path);
  File f;
  f.path = path;
  f.id = st->id;
  f.replication = st->replication;
  f.chunk_size = st->chunk_size;
  f.length = st->size;
  return f;
}

std::vector<int32_t> Client::OrderByDistance(std::vector<int32_t> ranks, int from) const {
  // Greedy nearest-next: from `from`, take a replica on the same host if any,
  // else the first one left; continue from the one taken.
  std::vector<int32_t> out;
  int cur = from;
  while (!ranks.empty()) {
    auto same = [&](int32_t r) { return SameHostName(r, cur); };
    auto it = std::find_if(ranks.begin(), ranks.end(), same);
    if (it == ranks.end()) it = ranks.begin();
    out.push_back(*it);
    cur = *it;
    ranks.erase(it);
  }
  return out;
}

Result<Client::CachedLease> Client::GetLease(File* f, uint32_t index) {
  auto key = std::make_pair(f->id, index);
  auto it = leases_.find(key);
  const uint64_t now = MonoMicros();
  if (it != leases_.end() && it->second.expires_us > now) return it->second;
  LeaseReq req;
  req.path = f->path;
  req.file_id = f->id;
  req.index = index;
  LeaseReply rep;
  Status s = MasterCall(req, &rep);
  if (!s.ok()) return s;
  CachedLease l;
  l.handle = rep.handle;
  l.version = rep.version;
  l.primary = rep.primary;
  l.replicas = rep.replicas;
  l.expires_us = now + static_cast<uint64_t>(rep.lease_ms) * 500;  // half the lease
  leases_[key] = l;
  locs_.erase(key);
  return l;
}

std::vector<int32_t> Client::Secondaries(const CachedLease& lease) {
  std::vector<int32_t> out;
  for (int32_t r : lease.replicas) {
    if (r != lease.primary) out.push_back(r);
  }
  return out;
}

void Client::PumpOrIdle() {
  if (rpc_.PumpOnce()) {
    rpc_.idler().Busy();
  } else {
    rpc_.idler().Idle();
  }
}

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

Client::TailGuard::~TailGuard() {
  // Each such send completes or is abandoned within the send timeout.
  while (c->rpc_.transport()->TailSendsPending() > 0) c->PumpOrIdle();
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

void Client::NoteEnd(File* f, uint64_t end) {
  f->length = std::max(f->length, end);
  Unreported& u = unreported_[f->id];
  u.path = f->path;
  u.end = std::max(u.end, end);
}

Status Client::ReportLength(uint64_t id) {
  auto it = unreported_.find(id);
  if (it == unreported_.end()) return Status::OK();
  SetLengthReq req;
  req.path = it->second.path;
  req.file_id = id;
  req.length = it->second.end;
  req.grow_only = true;
  SetLengthReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  unreported_.erase(id);
  return Status::OK();
}

Status Client::ReportLengthsUnder(const std::string& path) {
  std::vector<uint64_t> ids;
  for (const auto& [id, u] : unreported_) {
    if (u.path == path ||
        (u.path.size() > path.size() && u.path.compare(0, path.size(), path) == 0 &&
         (path == "/" || u.path[path.size()] == '/'))) {
      ids.push_back(id);
    }
  }
  for (uint64_t id : ids) GFS_RETURN_IF_ERROR(ReportLength(id));
  return Status::OK();
}

Status Client::FetchLocations(File* f, uint32_t first, uint32_t count) {
  LookupReq req;
  req.path = f->path;
  req.first = first;
  req.count = count;
  LookupReply rep;
  GFS_RETURN_IF_ERROR(MasterCall(req, &rep));
  if (rep.attr.id != f->id) return Status::NotFound(f->path + " was replaced by another file");
  f->length = std::max(f->length, rep.attr.length);
  const uint64_t expires = MonoMicros() + 30ull * 1000 * 1000;
  for (ChunkLocation& c : rep.chunks) {
    locs_[{f->id, c.index}] = CachedLoc{std::move(c), expires};
  }
  return Status::OK();
}

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

Client::ReadStream& Client::Stream(uint64_t file_id) {
  auto it = streams_.find(file_id);
  if (it == streams_.end()) {
    // Few files are read at once: past 8 (8 x read_ahead of memory at
    // most), forget the stream read longest ago.
    if (streams_.size() >= 8) {
      auto oldest = streams_.begin();
      for (auto j = streams_.begin(); j != streams_.end(); ++j) {
        if (j->second.used < oldest->second.used) oldest = j;
      }
      DropAhead(&oldest->second);
      streams_.erase(oldest);
    }
    it = streams_.try_emplace(file_id).first;
  }
  it->second.used = ++stream_clock_;
  return it->second;
}

void Client::DropAhead(ReadStream* rs) {
  for (AheadSeg& s : rs->segs) rpc_.Forget(s.id);
  rs->segs.clear();
}

void Client::ForgetStream(uint64_t file_id) {
  local_.erase(file_id);
  auto it = streams_.find(file_id);
  if (it == streams_.end()) return;
  DropAhead(&it->second);
  streams_.erase(it);
}

size_t Client::TakeAhead(File* f, ReadStream* rs, uint64_t offset, uint8_t* out, size_t n) {
  size_t done = 0;
  const uint64_t now = MonoMicros();
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
        stats_.counters["read_ahead_expired"]++;
        break;
      }
    }
    if (!s.have) {
      auto m = rpc_.Wait(s.id);
      Status st = m.ok() ? m->status() : m.status();
      if (!st.ok()) {
        stats_.counters["read_ahead_failed"]++;
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
  const uint64_t window = cfg_.read_ahead;
  if (window == 0 || cfg_.read_size == 0) return;
  uint64_t end = from;
  if (!rs->segs.empty()) end = std::max(end, rs->segs.back().off + rs->segs.back().len);
  bool fetched = false;
  while (end < f->length && end - from < window) {
    const auto index = static_cast<uint32_t>(end / f->chunk_size);
    const uint64_t now = MonoMicros();
    auto it = locs_.find({f->id, index});
    if (it == locs_.end() || it->second.expires_us <= now) {
      if (fetched) return;
      fetched = true;  // at most one master round trip per read
      const auto count = static_cast<uint32_t>(window / f->chunk_size + 2);
      if (!FetchLocations(f, index, count).ok()) return;
      continue;
    }
    const ChunkLocation& loc = it->second.loc;
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
    const int32_t target = PickReplica(loc, read_rr_++, 0);
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

bool Client::SameHostName(int32_t a, int32_t b) const {
  return a >= 0 && b >= 0 && static_cast<size_t>(a) < hosts_.size() &&
         static_cast<size_t>(b) < hosts_.size() &&
         hosts_[static_cast<size_t>(a)].name == hosts_[static_cast<size_t>(b)].name;
}

bool Client::LocalPeer(int32_t target) const {
  const int self = rpc_.transport()->rank();
  if (target < 0 || target == self || no_local_.count(target) != 0 || !SameHostName(target, self)) {
    return false;
  }
  // The same name on another machine (two nodes configured alike) is not
  // this host: the boot ids tell them apart.
  const std::string& mine = hosts_[static_cast<size_t>(self)].boot_id;
  return !mine.empty() && mine == hosts_[static_cast<size_t>(target)].boot_id;
}

bool Client::ShortCircuit(int32_t target) const {
  return cfg_.short_circuit_reads && LocalPeer(target);
}

bool Client::ChunkFilePath(const std::string& path, uint64_t handle) const {
  // <data dir>/<one directory>/chunks/<16 hex digits>.chunk, absolute, with no
  // "." or ".." anywhere: the chunk's own data file, never another file.
  char name[40];
  std::snprintf(name, sizeof name, "/chunks/%016llx.chunk",
                static_cast<unsigned long long>(handle));
  const std::string prefix = data_dir_abs_ == "/" ? "/" : data_dir_abs_ + "/";
  if (path.size() <= prefix.size() + std::strlen(name) ||
      path.compare(0, prefix.size(), prefix) != 0 ||
      path.compare(path.size() - std::strlen(name), std::strlen(name), name) != 0) {
    return false;
  }
  const std::string dir =
      path.substr(prefix.size(), path.size() - prefix.size() - std::strlen(name));
  return !dir.empty() && dir.find('/') == std::string::npos && dir != "." && dir != ".." &&
         path.find("/./") == std::string::npos && path.find("/../") == std::string::npos;
}

Status Client::ReadBlocksChecked(LocalView* v, uint64_t from, uint64_t to, uint8_t* dst) {
  size_t got = 0;
  GFS_RETURN_IF_ERROR(v->file->Read(from, to - from, dst, &got));
  if (got != to - from) return Status::Corruption("short chunk file");
  for (uint64_t b = from; b < to; b += v->block_size) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(b + v->block_size, to) - b);
    if (crc32c::Value(dst + (b - from), len) != v->crcs[(b - v->base) / v->block_size]) {
      return Status::Corruption("block checksum mismatch");
    }
  }
  return Status::OK();
}

Status Client::ReadFromView(LocalView* v, uint64_t chunk_off, uint8_t* out, size_t n) {
  const uint64_t bs = v->block_size;
  const uint64_t stop = chunk_off + n;
  uint64_t pos = chunk_off;
  while (pos < stop) {
    const uint64_t b0 = pos / bs * bs;
    const uint64_t b1 = std::min(b0 + bs, v->end);
    // Whole blocks go straight into the caller's memory and are checked
    // there; a block the range covers only in part goes through edge_.
    const uint64_t whole_end = stop == v->end ? stop : b0 + (stop - b0) / bs * bs;
    if (pos == b0 && whole_end > pos) {
      GFS_RETURN_IF_ERROR(ReadBlocksChecked(v, pos, whole_end, out + (pos - chunk_off)));
      pos = whole_end;
      continue;
    }
    edge_.resize(static_cast<size_t>(b1 - b0));
    GFS_RETURN_IF_ERROR(ReadBlocksChecked(v, b0, b1, edge_.data()));
    const uint64_t upto = std::min(b1, stop);
    std::memcpy(out + (pos - chunk_off), edge_.data() + (pos - b0),
                static_cast<size_t>(upto - pos));
    pos = upto;
  }
  return Status::OK();
}

size_t Client::TakeLocal(File* f, uint64_t offset, uint8_t* out, size_t n) {
  auto it = local_.find(f->id);
  if (it == local_.end()) return 0;
  LocalView& v = it->second;
  if (MonoMicros() - v.fetched_us > kAheadMaxAgeUs) {
    local_.erase(it);
    return 0;
  }
  const uint64_t co = offset % f->chunk_size;
  if (offset / f->chunk_size != v.index || co < v.base || co >= v.end) return 0;
  const size_t take = static_cast<size_t>(std::min<uint64_t>(n, v.end - co));
  if (!ReadFromView(&v, co, out, take).ok()) {
    stats_.counters["local_read_fallbacks"]++;
    local_.erase(it);
    return 0;
  }
  stats_.counters["bytes_read"] += take;
  stats_.counters["bytes_read_local"] += take;
  return take;
}

Status Client::ReadLocalPiece(File* f, uint32_t index, uint64_t rep_handle, int32_t target,
                              ReadLocalReply& rep, uint64_t chunk_off, uint8_t* out, size_t n,
                              size_t* got) {
  *got = rep.chunk_length > chunk_off
             ? static_cast<size_t>(std::min<uint64_t>(n, rep.chunk_length - chunk_off))
             : 0;
  if (*got == 0) return Status::OK();
  LocalView v;
  v.index = index;
  v.block_size = rep.block_size;
  v.base = rep.base;
  v.end = rep.end;
  v.crcs = std::move(rep.crcs);
  v.fetched_us = MonoMicros();
  if (v.block_size == 0 || v.base % v.block_size != 0 || chunk_off < v.base ||
      chunk_off + *got > v.end ||
      v.crcs.size() != (v.end - v.base + v.block_size - 1) / v.block_size) {
    return Status::Protocol("read_local: checksums do not cover the range");
  }
  if (!ChunkFilePath(rep.path, rep_handle)) {
    // Not the chunk's own data file under the job's data directory: never
    // opened (a chunkserver of another configuration, or a bad answer).
    no_local_.insert(target);
    stats_.counters["local_read_refused_paths"]++;
    return Status::Protocol("read_local: " + rep.path + " is not the data file of chunk " +
                            std::to_string(rep_handle) + " under " + data_dir_abs_);
  }
  Status opened = env_->OpenReadOnly(rep.path, &v.file);
  if (!opened.ok()) {
    no_local_.insert(target);
    stats_.counters["local_read_unreachable"]++;
    return opened;
  }
  GFS_RETURN_IF_ERROR(ReadFromView(&v, chunk_off, out, *got));
  if (local_.size() >= 8 && local_.count(f->id) == 0) local_.erase(local_.begin());
  local_[f->id] = std::move(v);
  return Status::OK();
}

void Client::ForgetReplica(uint64_t file_id, uint32_t index, int32_t rank) {
  auto it = locs_.find({file_id, index});
  if (it == locs_.end()) return;
  auto& reps = it->second.loc.replicas;
  auto r = std::find(reps.begin(), reps.end(), rank);
  if (r == reps.end() || reps.size() < 2) return;  // the last one stays: the master decides
  reps.erase(r);
  stats_.counters["replicas_avoided"]++;
}

int32_t Client::PickReplica(const ChunkLocation& loc, uint64_t turn, size_t attempt) {
  const int self = rpc_.transport()->rank();
  std::vector<int32_t> order = OrderByDistance(loc.replicas, self);
  // Spread reads over the replicas nearest to this client (those on its host,
  // else all of them: every other host is as far).
  size_t same = 1;
  while (same < order.size() && SameHostName(order[same], self) == SameHostName(order[0], self)) {
    ++same;
  }
  return order[(turn % same + attempt) % order.size()];
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
    pc.turn = read_rr_++;
    pieces.push_back(pc);
    done += pc.len;
  }
  // Make sure every chunk's location is cached (one batched lookup).
  const uint64_t now = MonoMicros();
  for (const Piece& pc : pieces) {
    auto it = locs_.find({f->id, pc.index});
    // A chunk cached without replicas was being created (or re-leased) when
    // it was looked up: ask again rather than fail.
    if (it == locs_.end() || it->second.expires_us <= now ||
        (it->second.loc.handle != 0 && it->second.loc.replicas.empty())) {
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
    auto it = locs_.find({f->id, pc.index});
    std::set<int32_t> all;
    if (it != locs_.end())
      all.insert(it->second.loc.replicas.begin(), it->second.loc.replicas.end());
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
    auto it = locs_.find({f->id, pc.index});
    if (it == locs_.end() || it->second.loc.handle == 0) {
      std::memset(out + pc.pos, 0, pc.len);  // a hole reads as zeros
      return Status(Code::kOk, "hole");
    }
    const ChunkLocation& loc = it->second.loc;
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
    auto it = locs_.find({f->id, pc.index});
    if (!pc.refreshed && it != locs_.end() && pc.attempt >= it->second.loc.replicas.size()) {
      pc.refreshed = true;
      pc.attempt = 0;
      locs_.erase(it);
      GFS_RETURN_IF_ERROR(FetchLocations(f, pc.index, 1));
    }
    Status again = issue(i);
    if (!again.ok() && pc.corrupt && !narrowing_) {
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
  narrowing_ = true;
  for (uint64_t pos = offset; pos < offset + n;) {
    const uint64_t chunk_start = pos / f->chunk_size * f->chunk_size;
    const uint64_t bend = std::min({chunk_start + ((pos - chunk_start) / kBlock + 1) * kBlock,
                                    chunk_start + f->chunk_size, offset + n});
    Status s = ReadPieces(f, pos, out + (pos - offset), static_cast<size_t>(bend - pos), {});
    if (!s.ok() && s.code() != Code::kCorruption) {
      narrowing_ = false;
      return s;
    }
    if (!s.ok() && (hi == 0 || hi == pos)) {
      if (hi == 0) lo = pos;
      hi = bend;
    }
    pos = bend;
  }
  narrowing_ = false;
  if (hi == 0) {
    stats_.counters["reads_assembled_from_blocks"]++;
    return Status::OK();
  }
  return Status::Corruption(
      f->path + ": bytes " + std::to_string(lo) + ".." + std::to_string(hi) + " (" +
      std::to_string(hi - lo) + " bytes at offset " + std::to_string(lo) +
      ") are unreadable: no replica holds a good copy (last error: " + last.ToString() + ")");
}

bool Client::TakePushAck(uint64_t data_id, Status* s) {
  auto it = push_acks_.find(data_id);
  if (it == push_acks_.end()) return false;
  Code c = static_cast<Code>(it->second);
  push_acks_.erase(it);
  *s = c == Code::kOk ? Status::OK() : Status(c, "data push refused by a chunkserver");
  return true;
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
  locs_[{f->id, last.index}] = CachedLoc{last, MonoMicros() + 30ull * 1000 * 1000};
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

Status Client::Fsync(File* f) {
  // Sync every replica the data went to. A replica that fails to answer (its
  // chunkserver died) is asked again until the master stops listing it for
  // the chunk: then the data is durable on the replicas that are left, which
  // acknowledged it, and re-replication copies it from them.
  std::map<uint64_t, std::vector<int32_t>> todo = f->dirty;
  for (int attempt = 1;; ++attempt) {
    std::vector<std::pair<uint64_t, int32_t>> sent;
    std::vector<uint64_t> ids;
    for (const auto& [handle, replicas] : todo) {
      for (int32_t r : replicas) {
        auto id = rpc_.Start(r, SyncReq{handle}, cfg_.request_timeout_ms);
        if (!id.ok()) return id.status();
        ids.push_back(*id);
        sent.emplace_back(handle, r);
      }
    }
    std::map<uint64_t, std::vector<int32_t>> failed;
    Status first;
    for (size_t i = 0; i < ids.size(); ++i) {
      auto m = rpc_.Wait(ids[i]);
      Status s = m.ok() ? m->status() : m.status();
      if (s.ok()) continue;
      if (!Retryable(s.code())) return s;
      if (first.ok()) first = s;
      failed[sent[i].first].push_back(sent[i].second);
    }
    if (failed.empty()) break;
    if (attempt >= kMaxAttempts) return first;
    stats_.counters["fsync_retries"]++;
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
    // Which of the failed replicas does the master still count?
    for (auto it = locs_.begin(); it != locs_.end();) {
      it = it->first.first == f->id ? locs_.erase(it) : std::next(it);
    }
    uint32_t chunks = static_cast<uint32_t>(f->length / f->chunk_size + 1);
    GFS_RETURN_IF_ERROR(FetchLocations(f, 0, chunks));
    std::map<uint64_t, std::vector<int32_t>> live;
    for (const auto& [key, loc] : locs_) {
      if (key.first == f->id) live[loc.loc.handle] = loc.loc.replicas;
    }
    todo.clear();
    for (const auto& [handle, replicas] : failed) {
      const std::vector<int32_t>& now = live[handle];
      for (int32_t r : replicas) {
        if (std::find(now.begin(), now.end(), r) != now.end()) todo[handle].push_back(r);
      }
    }
    if (todo.empty()) break;
  }
  f->dirty.clear();
  // The bytes are durable; now the length that covers them.
  return ReportLength(f->id);
}

Status Client::Close(File* f) {
  ForgetStream(f->id);
  return Fsync(f);
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

Result<ReportReply> Client::Report() {
  ReportReply rep;
  Status s = MasterCall(ReportReq{}, &rep);
  if (!s.ok()) return s;
  return rep;
}

Result<FsckReply> Client::Fsck(const std::string& path, bool verify) {
  FsckReply rep;
  FsckReq req;
  req.path = path;
  req.verify = verify;
  // Verification reads every replica: allow it more time than one request.
  Status s = MasterCall(req, &rep, cfg_.request_timeout_ms * 4);
  if (!s.ok()) return s;
  return rep;
}

Status Client::Finish(int status) {
  // Lengths not yet told (files written and never closed). A file removed or
  // replaced since then has no length to keep.
  while (!unreported_.empty()) {
    const uint64_t id = unreported_.begin()->first;
    Status s = ReportLength(id);
    if (!s.ok() && s.code() != Code::kNotFound) return s;
    unreported_.erase(id);
  }
  Empty rep;
  return MasterCall(ClientDoneReq{status}, &rep, 120000);
}

}  // namespace gfs
