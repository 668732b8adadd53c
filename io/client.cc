#include "io/client.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/crc32c.h"
#include "mpi/buffer_pool.h"

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

Client::Client(Transport* t, const JobConfig& cfg, int master_rank, std::vector<std::string> hosts)
    : rpc_(t), cfg_(cfg), master_(master_rank), hosts_(std::move(hosts)) {
  rpc_.set_unsolicited([this](Message& m) { OnUnsolicited(m); });
}

void Client::OnUnsolicited(Message& m) {
  if (m.type() == MsgType::kPushAck) {
    PushAckMsg a;
    if (m.Decode(&a).ok()) push_acks_[a.data_id] = a.status;
  } else if (m.type() == MsgType::kRecallGrant) {
    RecallGrantMsg r;
    if (!m.Decode(&r).ok()) return;
    auto it = held_.find(r.handle);
    // Named by the primary's grant (replicas[0]), whichever replica recalls it.
    if (it != held_.end() && it->second.replicas[0].grant == r.grant) it->second.recalled = true;
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
  EndAllHeld();
  Empty rep;
  return MasterCall(DeleteReq{path, recursive}, &rep);
}

Status Client::Rename(const std::string& src, const std::string& dst, bool replace) {
  EndAllHeld();
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
    auto same = [&](int32_t r) {
      return cur >= 0 && static_cast<size_t>(cur) < hosts_.size() &&
             static_cast<size_t>(r) < hosts_.size() &&
             hosts_[static_cast<size_t>(r)] == hosts_[static_cast<size_t>(cur)];
    };
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
    // kGranting: a short-circuit write asked for its grant (then it is
    // written and ended at once); kWriting: the write request is out.
    enum State { kNew, kPushing, kGranting, kWriting, kDone } state = kNew;
    int attempts = 0;
    uint64_t not_before_us = 0, first_failure_us = 0;
    uint64_t data_id = 0;
    uint64_t deadline_us = 0;
    uint64_t req_id = 0;
    CachedLease lease;
    Status last;
    std::vector<std::pair<std::string, std::string>> local_files;  // short-circuit: data, crc
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
    if (op.state == Op::kWriting || op.state == Op::kGranting) rpc_.Forget(op.req_id);
    push_acks_.erase(op.data_id);
    --inflight;
    leases_.erase({f->id, op.index});
    op.local_files = {};
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
    if (!op.local_files.empty()) f->dirty_local[op.lease.handle] = op.local_files;
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
      const bool local = WriteLocally(op.lease);
      // Not (or no longer) short-circuit, e.g. a replica's chunkserver is
      // gone: a grant this client holds on the chunk ends first (with no
      // replica answering, the next fsync fails), and nothing more goes into
      // its files.
      if (!local && held_.count(op.lease.handle) != 0) EndHeld(op.lease.handle);
      if (local) {
        const uint64_t handle = op.lease.handle;
        auto h = held_.find(handle);
        if (h != held_.end()) rpc_.PumpOnce();  // a recall may have come
        if (h != held_.end()) {
          LocalGrant& g = h->second;
          if (!g.recalled && g.version == op.lease.version &&
              g.replicas[0].rank == op.lease.primary && op.chunk_off == g.end &&
              op.chunk_off + op.len <= g.window_end && MonoMicros() < g.stop_us) {
            Status s = WriteGranted(&g, op.data, op.len);
            if (s.ok()) {
              stats_.counters["bytes_written_local"] += op.len;
              stats_.counters["local_writes_held"]++;
              op.local_files.clear();
              for (const auto& r : g.replicas) op.local_files.emplace_back(r.path, r.crc_path);
              complete(op);
              continue;
            }
            EndHeld(handle);  // with what it had written before this piece
            GFS_RETURN_IF_ERROR(fail(op, s));
            continue;
          }
          EndHeld(handle);
        }
        // One grant request per chunk at a time: the next piece waits for
        // it (and goes on under it if it is held).
        if (std::any_of(ops.begin(), ops.end(), [&](const Op& o) {
              return o.state == Op::kGranting && o.lease.handle == handle;
            })) {
          --inflight;
          continue;
        }
        EndHeldOf(f->id, handle);  // the file's writes have moved on to this chunk
        WriteLocalReq w;
        w.handle = handle;
        w.version = op.lease.version;
        w.offset = op.chunk_off;
        w.length = op.len;
        // Ask to hold the grant for what follows in the chunk (not on a
        // retry: then just this range, under the grant's full life).
        if (cfg_.write_hold_ms > 0 && op.attempts == 0) w.window_end = f->chunk_size;
        w.secondaries = Secondaries(op.lease);  // every replica is on this host
        auto id = rpc_.Start(op.lease.primary, w, cfg_.request_timeout_ms);
        if (!id.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, id.status()));
          continue;
        }
        op.req_id = *id;
        op.state = Op::kGranting;
        continue;
      }
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
    if (completed == ops.size()) break;  // all written under a held grant: nothing to wait for
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
      } else if (op.state == Op::kGranting) {
        Result<Message> r = Status::Internal("unset");
        if (!rpc_.TryTake(op.req_id, &r)) continue;
        Status s = r.ok() ? r->status() : r.status();
        WriteLocalReply rep;
        if (s.ok()) s = r->Decode(&rep);
        if (!s.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, s));
          continue;
        }
        LocalGrant g;
        g.file_id = f->id;
        g.handle = op.lease.handle;
        g.version = op.lease.version;
        g.block_size = rep.block_size;
        g.start = g.end = op.chunk_off;
        g.window_end = std::max<uint64_t>(rep.window_end, op.chunk_off + op.len);
        // The chunkserver gives up on the grant grant_ms after it gave it;
        // stop writing at half that, counted from before it was asked.
        g.stop_us = op.deadline_us - timeout_us + static_cast<uint64_t>(rep.grant_ms) * 500;
        g.replicas.resize(1 + rep.others.size());
        g.replicas[0].rank = op.lease.primary;
        g.replicas[0].path = rep.path;
        g.replicas[0].crc_path = rep.crc_path;
        g.replicas[0].grant = rep.grant;
        for (size_t i = 0; i < rep.others.size(); ++i) {
          g.replicas[i + 1].rank = rep.others[i].rank;
          g.replicas[i + 1].path = rep.others[i].path;
          g.replicas[i + 1].crc_path = rep.others[i].crc_path;
          g.replicas[i + 1].grant = rep.others[i].grant;
        }
        s = OpenGrant(&g);
        if (s.ok()) s = WriteGranted(&g, op.data, op.len);
        op.local_files.clear();
        for (const auto& r : g.replicas) op.local_files.emplace_back(r.path, r.crc_path);
        if (s.ok() && g.window_end > g.end) {
          // Held: no kWriteLocalDone yet; the writes that follow go on under it.
          stats_.counters["bytes_written_local"] += op.len;
          complete(op);
          held_[g.handle] = std::move(g);
          continue;
        }
        // Ended now, on every replica: the write returns once those that
        // answer hold its checksums (see FinishGrant). A file that was the
        // trouble sends the retry through the chunkservers.
        Status ended = FinishGrant(&g, s.ok());
        if (s.ok()) s = ended;
        if (!s.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, s));
          continue;
        }
        stats_.counters["bytes_written_local"] += op.len;
        complete(op);
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
  EndAllHeld();
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

bool Client::LocalPeer(int32_t target) const {
  const int self = rpc_.transport()->rank();
  return target >= 0 && target != self && no_local_.count(target) == 0 &&
         static_cast<size_t>(target) < hosts_.size() && static_cast<size_t>(self) < hosts_.size() &&
         hosts_[static_cast<size_t>(target)] == hosts_[static_cast<size_t>(self)];
}

bool Client::ShortCircuit(int32_t target) const {
  return cfg_.short_circuit_reads && LocalPeer(target);
}

bool Client::WriteLocally(const CachedLease& lease) const {
  return cfg_.short_circuit_writes && !lease.replicas.empty() &&
         std::find(lease.replicas.begin(), lease.replicas.end(), lease.primary) !=
             lease.replicas.end() &&
         std::all_of(lease.replicas.begin(), lease.replicas.end(), [this](int32_t r) {
           // A replica that is gone: through the chunkservers, which wait for
           // the master to drop it.
           return LocalPeer(r) && !rpc_.transport()->PeerGone(r);
         });
}

bool Client::AppendLocally(const CachedLease& lease) const {
  return cfg_.short_circuit_appends && cfg_.short_circuit_writes && lease.replicas.size() == 1 &&
         lease.replicas[0] == lease.primary && LocalPeer(lease.primary) &&
         !rpc_.transport()->PeerGone(lease.primary);
}

Status Client::WriteAppendRange(int32_t primary, const AppendLocalReply& rep, const Span& record,
                                uint64_t stop_us, std::vector<uint32_t>* crcs) {
  if (rep.block_size == 0 || rep.path.empty()) {
    return Status::Protocol("append_local: answer without a file or block size");
  }
  if (MonoMicros() >= stop_us) return Status::Timeout("short-circuit append ran past its grant");
  // Opened per record, as a write grant's files are: the chunk's file is
  // never written through a descriptor older than the grant.
  std::unique_ptr<RandomRWFile> file;
  Status s = env_->OpenRandomRW(rep.path, /*create=*/false, &file);
  if (!s.ok()) return Unreachable(primary, s);
  const uint64_t bs = rep.block_size;
  const auto* data = static_cast<const uint8_t*>(record.data);
  crcs->clear();
  constexpr size_t kPiece = 1u << 20;
  uint32_t part = 0;
  for (size_t done = 0; done < record.size;) {
    if (MonoMicros() >= stop_us) return Status::Timeout("short-circuit append ran past its grant");
    const size_t len = std::min(kPiece, record.size - done);
    // Each piece between block boundaries is checksummed while its bytes
    // are in the cache, then the bytes go into the file.
    for (uint64_t x = rep.offset + done, b = x + len; x < b;) {
      const uint64_t next = (x / bs + 1) * bs, y = std::min(next, b);
      const bool fresh = x == rep.offset || x % bs == 0;
      part = crc32c::Extend(fresh ? 0 : part, data + (x - rep.offset), static_cast<size_t>(y - x));
      if (y == next || y == rep.offset + record.size) crcs->push_back(part);
      x = y;
    }
    s = file->Write(rep.offset + done, data + done, len);
    if (!s.ok()) return Unreachable(primary, s);
    done += len;
  }
  return Status::OK();
}

Status Client::Unreachable(int32_t target, const Status& s) {
  no_local_.insert(target);
  stats_.counters["local_write_unreachable"]++;
  return Status(Code::kUnavailable, "short-circuit write: " + s.ToString());
}

Status Client::OpenGrant(LocalGrant* g) {
  if (g->block_size == 0 || g->replicas.empty() ||
      std::any_of(g->replicas.begin(), g->replicas.end(),
                  [](const LocalGrant::Replica& r) { return r.path.empty(); })) {
    return Status::Protocol("write_local: answer without a file or block size");
  }
  // Opened per grant, never kept past it: a chunk file deleted and made
  // again (a clone, which the grant holds off) must not be written through
  // an old descriptor.
  for (LocalGrant::Replica& r : g->replicas) {
    Status s = env_->OpenRandomRW(r.path, /*create=*/false, &r.file);
    if (!s.ok()) return Unreachable(r.rank, s);
  }
  return Status::OK();
}

Status Client::WriteGranted(LocalGrant* g, const uint8_t* data, size_t n) {
  const uint64_t bs = g->block_size;
  const uint64_t first = (g->start + bs - 1) / bs * bs;  // the first checksum to take
  constexpr size_t kPiece = 1u << 20;
  for (size_t done = 0; done < n;) {
    if (MonoMicros() >= g->stop_us)
      return Status::Timeout("short-circuit write ran past its grant");
    const size_t len = std::min(kPiece, n - done);
    const uint64_t a = g->end, b = a + len;
    // The checksums of this piece's blocks while its bytes are in the
    // cache, then the bytes.
    const size_t had = g->crcs.size();
    const uint32_t part = g->part_crc;
    for (uint64_t x = std::max(a, first); x < b;) {
      const uint64_t next = (x / bs + 1) * bs, y = std::min(next, b);
      g->part_crc = crc32c::Extend(x % bs == 0 ? 0 : g->part_crc, data + done + (x - a),
                                   static_cast<size_t>(y - x));
      if (y == next) g->crcs.push_back(g->part_crc);
      x = y;
    }
    for (LocalGrant::Replica& r : g->replicas) {
      Status s = r.file->Write(a, data + done, len);
      if (!s.ok()) {
        g->crcs.resize(had);
        g->part_crc = part;
        return Unreachable(r.rank, s);
      }
    }
    g->end = b;
    done += len;
  }
  return Status::OK();
}

WriteLocalDoneReq Client::DoneOf(LocalGrant* g) {
  WriteLocalDoneReq d;
  d.handle = g->handle;
  d.written = 1;
  d.end = g->end;
  d.crcs = std::move(g->crcs);
  const uint64_t bs = g->block_size;
  const uint64_t first = (g->start + bs - 1) / bs * bs;
  if (g->end > first && g->end % bs != 0) d.crcs.push_back(g->part_crc);  // the last, partial block
  return d;
}

Status Client::FinishGrant(LocalGrant* g, bool written) {
  WriteLocalDoneReq d;
  if (written) {
    d = DoneOf(g);
  } else {
    d.handle = g->handle;
  }
  std::vector<std::pair<int32_t, uint64_t>> sent;  // rank, request id
  for (LocalGrant::Replica& r : g->replicas) {
    r.file.reset();
    if (rpc_.transport()->PeerGone(r.rank)) continue;
    d.grant = r.grant;
    auto id = rpc_.Start(r.rank, d, cfg_.request_timeout_ms);
    if (id.ok()) sent.emplace_back(r.rank, *id);
  }
  // Every replica that answers has the checksums of what was written (kTimeout
  // answered: its grant had run out and it took them from the file as it found
  // it, every byte written here being in it by then, as no write starts past
  // half the grant's life). One that does not answer is gone or stuck, as for
  // a write through the chunkservers; but with none answering, the checksums
  // may be stored nowhere.
  Status s;
  size_t answered = 0;
  for (const auto& [rank, id] : sent) {
    auto m = rpc_.Wait(id);
    if (!m.ok()) continue;
    ++answered;
    if (!m->status().ok() && m->status().code() != Code::kTimeout && s.ok()) {
      s = Status(m->status().code(),
                 "replica rank " + std::to_string(rank) + ": " + m->status().message());
    }
  }
  if (s.ok() && answered == 0 && written) {
    s = Status::Unavailable("the end of a short-circuit write to chunk " +
                            std::to_string(g->handle) + " was not answered by any replica");
  }
  g->replicas.clear();
  return s;
}

void Client::EndHeld(uint64_t handle) {
  auto it = held_.find(handle);
  if (it == held_.end()) return;
  LocalGrant g = std::move(it->second);
  held_.erase(it);
  stats_.counters["local_write_holds_ended"]++;
  // A failure is the file's next fsync's: the writes it covers had returned.
  Status s = FinishGrant(&g, true);
  if (!s.ok()) deferred_.emplace(g.file_id, s);
}

void Client::EndHeldOf(uint64_t file_id, uint64_t keep) {
  std::vector<uint64_t> handles;
  for (const auto& [handle, g] : held_) {
    if (g.file_id == file_id && handle != keep) handles.push_back(handle);
  }
  for (uint64_t h : handles) EndHeld(h);
}

void Client::EndAllHeld() {
  while (!held_.empty()) EndHeld(held_.begin()->first);
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

Status Client::ReadLocalPiece(File* f, uint32_t index, int32_t target, ReadLocalReply& rep,
                              uint64_t chunk_off, uint8_t* out, size_t n, size_t* got) {
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
  std::vector<int32_t> order = OrderByDistance(loc.replicas, rpc_.transport()->rank());
  // Spread reads over replicas at the same distance.
  size_t same = 1;
  while (same < order.size() && hosts_.size() > static_cast<size_t>(order[same]) &&
         hosts_[static_cast<size_t>(order[same])] == hosts_[static_cast<size_t>(order[0])]) {
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
    const int32_t target = pc.same >= 0 ? pc.same : PickReplica(loc, pc.turn, pc.attempt);
    pc.same = -1;
    pc.target = target;
    pc.local = ShortCircuit(target) && !pc.no_local;
    ReadLocalReq r;  // a ReadReq under its own type
    r.handle = loc.handle;
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
        ls = ReadLocalPiece(f, pc.index, pc.target, lrep, pc.chunk_off, out + pc.pos, pc.len, &got);
      if (ls.ok()) {
        if (got < pc.len) std::memset(out + pc.pos + got, 0, pc.len - got);
        ++completed;
        bytes_done += pc.len;
        stats_.counters["bytes_read"] += pc.len;
        stats_.counters["bytes_read_local"] += got;
        if (progress) progress(bytes_done);
        continue;
      }
      // Read it through the same chunkserver instead (not a failed attempt).
      stats_.counters["local_read_fallbacks"]++;
      pc.no_local = true;
      pc.same = pc.target;
      Status again = issue(i);
      if (!again.ok()) return again;
      if (again.message() == "hole") ++completed;
      continue;
    }
    ReadReply rep;
    if (s.ok()) s = m->Decode(&rep);
    if (s.ok()) {
      std::memcpy(out + pc.pos, rep.bytes.data, rep.bytes.size);
      if (rep.bytes.size < pc.len) {
        // Beyond what the chunk holds but inside the file: zeros.
        std::memset(out + pc.pos + rep.bytes.size, 0, pc.len - rep.bytes.size);
      }
      ++completed;
      bytes_done += pc.len;
      stats_.counters["bytes_read"] += pc.len;
      if (progress) progress(bytes_done);
      continue;
    }
    // Try another replica; after a full round, refresh locations once.
    stats_.counters["read_retries"]++;
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
    if (!again.ok()) {
      return Status(s.code() == Code::kOk ? again.code() : s.code(),
                    again.message() + " (last error: " + s.ToString() + ")");
    }
    if (again.message() == "hole") ++completed;
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

Result<uint64_t> Client::RecordAppend(File* f, const void* data, size_t n) {
  std::vector<uint64_t> offsets;
  GFS_RETURN_IF_ERROR(RecordAppendMany(f, {Span{data, n}}, &offsets));
  return offsets[0];
}

Status Client::RecordAppendMany(File* f, const std::vector<Span>& records,
                                std::vector<uint64_t>* offsets) {
  EndAllHeld();
  TailGuard tails{this};  // the records are sent in place
  ForgetStream(f->id);
  struct Op {
    // kGranting, kLanding: a short-circuit append (kAppendLocal, then
    // kAppendLocalDone once the record is in the file).
    enum State { kNew, kPushing, kAppending, kGranting, kLanding, kDone } state = kNew;
    uint32_t index = 0;
    CachedLease lease;
    uint64_t data_id = 0, req_id = 0, deadline_us = 0, not_before_us = 0;
    uint64_t first_failure_us = 0;
    int failures = 0, hops = 0;
    // After a bounce to the next chunk: the replicas (sorted) that still hold
    // the pushed data under data_id. Empty: push again.
    std::vector<int32_t> pushed_to;
    uint64_t bytes = 0;         // counted in inflight_bytes while in flight
    uint64_t local_offset = 0;  // kLanding: where the record went in the chunk
    uint64_t asked_us = 0;      // kGranting: when append-local was sent
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
    if (op.state == Op::kAppending || op.state == Op::kGranting || op.state == Op::kLanding) {
      rpc_.Forget(op.req_id);
    }
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
      if (AppendLocally(op.lease)) {
        AppendLocalReq req;
        req.handle = op.lease.handle;
        req.version = op.lease.version;
        req.chunk_size = f->chunk_size;
        req.length = records[i].size;
        op.pushed_to.clear();
        op.asked_us = MonoMicros();
        auto id = rpc_.Start(op.lease.primary, req, cfg_.request_timeout_ms);
        op.state = Op::kGranting;
        if (!id.ok()) {
          GFS_RETURN_IF_ERROR(fail(op, id.status()));
          continue;
        }
        op.req_id = *id;
        continue;
      }
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
      } else if (op.state == Op::kAppending || op.state == Op::kGranting ||
                 op.state == Op::kLanding) {
        Result<Message> r = Status::Internal("unset");
        if (!rpc_.TryTake(op.req_id, &r)) continue;
        Status s = r.ok() ? r->status() : r.status();
        uint64_t at = op.local_offset;  // kLanding: granted before
        if (op.state == Op::kAppending) {
          AppendReply rep;
          if (s.ok()) s = r->Decode(&rep);
          at = rep.offset;
        } else if (op.state == Op::kGranting && s.ok()) {
          AppendLocalReply rep;
          s = r->Decode(&rep);
          if (s.ok()) {
            // The record goes into the file now; no write starts past half
            // the grant's life (after it the primary may checksum the range),
            // counted from before the grant was given.
            AppendLocalDoneReq d;
            d.handle = op.lease.handle;
            d.grant = rep.grant;
            const uint64_t stop = op.asked_us + uint64_t{rep.grant_ms} * 500;
            Status w = WriteAppendRange(op.lease.primary, rep, records[i], stop, &d.crcs);
            d.written = w.ok() ? 1 : 0;
            if (!w.ok()) d.crcs.clear();
            auto id = rpc_.Start(op.lease.primary, d, cfg_.request_timeout_ms);
            if (!w.ok()) {
              if (id.ok()) rpc_.Forget(*id);  // the primary checksums the range as it is
              GFS_RETURN_IF_ERROR(fail(op, w));
              continue;
            }
            if (!id.ok()) {
              GFS_RETURN_IF_ERROR(fail(op, id.status()));
              continue;
            }
            stats_.counters["local_appends"]++;
            stats_.counters["local_append_bytes"] += records[i].size;
            op.req_id = *id;
            op.local_offset = rep.offset;
            op.state = Op::kLanding;
            continue;
          }
        }
        if (s.code() == Code::kRetryNextChunk && op.state != Op::kLanding) {
          // The chunk is full: this record goes to the next one.
          landed(op);
          if (op.state == Op::kAppending) {
            op.pushed_to = op.lease.replicas;
            std::sort(op.pushed_to.begin(), op.pushed_to.end());
          }
          op.state = Op::kNew;
          if (++op.hops > 64) return Status::Internal("record append kept finding full chunks");
          if (f->append_index == File::kUnknownIndex || f->append_index <= op.index) {
            f->append_index = op.index + 1;
          }
          stats_.counters["append_next_chunk"]++;
          continue;
        }
        if (!s.ok()) {
          // kLanding with kTimeout: the grant ran out first and the range was
          // checksummed as the file held it; the record is appended again
          // (at least once).
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
  EndAllHeld();
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
  EndAllHeld();
  if (auto d = deferred_.find(f->id); d != deferred_.end()) {
    Status s = d->second;  // a held grant's end failed: the writes it covered may not be whole
    deferred_.erase(d);
    return s;
  }
  std::map<uint64_t, std::vector<int32_t>> todo = f->dirty;
  if (!f->dirty_local.empty()) {
    std::set<uint64_t> failed;
    GFS_RETURN_IF_ERROR(SyncLocal(f->dirty_local, &failed));
    for (const auto& [handle, files] : f->dirty_local) {
      if (failed.count(handle) == 0) todo.erase(handle);
    }
  }
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
  f->dirty_local.clear();
  // The bytes are durable; now the length that covers them.
  return ReportLength(f->id);
}

Status Client::SyncLocal(
    const std::map<uint64_t, std::vector<std::pair<std::string, std::string>>>& files,
    std::set<uint64_t>* failed) {
  struct Opened {
    uint64_t handle;
    std::unique_ptr<RandomRWFile> data, crc;
  };
  std::vector<Opened> opened;
  std::map<std::string, std::vector<uint64_t>> dirs;  // directory -> its chunks
  for (const auto& [handle, replicas] : files) {
    // All of a chunk's replicas here, or none (its chunkservers sync them).
    std::vector<Opened> mine;
    for (const auto& paths : replicas) {
      Opened o{handle, nullptr, nullptr};
      if (!env_->OpenRandomRW(paths.first, /*create=*/false, &o.data).ok() ||
          !env_->OpenRandomRW(paths.second, /*create=*/false, &o.crc).ok()) {
        failed->insert(handle);
        break;
      }
      mine.push_back(std::move(o));
    }
    if (failed->count(handle) != 0) continue;
    for (const auto& paths : replicas) {
      auto& v = dirs[std::filesystem::path(paths.first).parent_path().string()];
      if (v.empty() || v.back() != handle) v.push_back(handle);
    }
    for (Opened& o : mine) opened.push_back(std::move(o));
  }
  // Every file's device writes first, so the disk has the whole batch while
  // the first sync waits (as the chunkserver's own sync does).
  for (Opened& o : opened) o.data->StartWriteback(0, 0);
  // A failed sync is the fsync's error, not a reason to ask the chunkserver:
  // the kernel may have dropped the pages, and a sync through a descriptor
  // opened after the failure would not see it.
  Status first;
  for (Opened& o : opened) {
    Status s = o.data->Sync();
    if (s.ok()) s = o.crc->Sync();
    if (!s.ok() && first.ok()) first = s;
  }
  for (const auto& [dir, handles] : dirs) {
    Status s = env_->SyncDir(dir);
    if (!s.ok() && first.ok()) first = s;
  }
  stats_.counters["local_syncs"] += opened.size();
  stats_.counters["local_sync_unreachable"] += failed->size();
  return first;
}

Status Client::Close(File* f) {
  ForgetStream(f->id);
  return Fsync(f);
}

Status Client::Truncate(File* f, uint64_t length) {
  EndAllHeld();
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
  EndAllHeld();
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
  EndAllHeld();
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
