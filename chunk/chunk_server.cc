#include "chunk/chunk_server.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/clock.h"
#include "common/log.h"
#include "common/random.h"
#include "mpi/transport/buffer_pool.h"

namespace gfs {
namespace {

constexpr size_t kMaxTimeline = 256;
// Scrubbing waits for this long without client or peer I/O, verifies at most
// this many bytes per step, and starts a new pass over all chunks no sooner
// than this long after the previous one began.
constexpr uint64_t kScrubIdleUs = 500 * 1000;
constexpr size_t kScrubPiece = 1u << 20;
constexpr uint64_t kScrubPassUs = 60ull * 1000 * 1000;

}  // namespace

Status LoadOrCreateIdentity(Env* env, const std::string& dir, uint64_t* id) {
  std::string path = dir + "/IDENTITY";
  std::string text;
  if (env->FileExists(path)) {
    GFS_RETURN_IF_ERROR(env->ReadFile(path, &text));
    if (std::sscanf(text.c_str(), "%" SCNx64, id) != 1 || *id == 0) {
      return Status::Corruption(path + ": not a valid identity");
    }
    return Status::OK();
  }
  *id = RandomIdentity();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 "\n", *id);
  return env->WriteFileAtomic(path, buf);
}

Status LoadStoreId(Env* env, const std::string& dir, uint64_t* id) {
  *id = 0;
  const std::string path = dir + "/STORE";
  if (!env->FileExists(path)) return Status::OK();
  std::string text;
  GFS_RETURN_IF_ERROR(env->ReadFile(path, &text));
  if (std::sscanf(text.c_str(), "%" SCNx64, id) != 1 || *id == 0) {
    return Status::Corruption(path + ": not a valid store identity");
  }
  return Status::OK();
}

Status SaveStoreId(Env* env, const std::string& dir, uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 "\n", id);
  return env->WriteFileAtomic(dir + "/STORE", buf);
}

Status ClaimChunkserverDir(Env* env, const std::string& data_dir, int preferred, std::string* dir,
                           uint64_t* server_id, std::unique_ptr<FileLock>* lock) {
  for (int n = preferred; n < preferred + 4096; ++n) {
    std::string d = data_dir + "/chunkserver-" + std::to_string(n);
    GFS_RETURN_IF_ERROR(env->CreateDirs(d));
    Status s = env->LockFile(d + "/LOCK", lock);
    if (s.code() == Code::kBusy) continue;
    GFS_RETURN_IF_ERROR(s);
    GFS_RETURN_IF_ERROR(LoadOrCreateIdentity(env, d, server_id));
    *dir = d;
    return Status::OK();
  }
  return Status::Unavailable(data_dir + ": no free chunkserver directory");
}

namespace {
std::vector<ByteRange> ToWire(const std::vector<Range>& v) {
  std::vector<ByteRange> out;
  out.reserve(v.size());
  for (const Range& r : v) out.push_back(ByteRange{r.offset, r.length});
  return out;
}
}  // namespace

namespace {
// `dir` made absolute (as it is if the working directory cannot be read): the
// store's file names go to clients for short-circuit reads.
std::string Absolute(const std::string& dir) {
  std::error_code ec;
  std::string abs = std::filesystem::absolute(dir, ec).string();
  return ec ? dir : abs;
}
}  // namespace

ChunkServer::ChunkServer(Transport* t, Env* env, const JobConfig& cfg, int master_rank,
                         std::string dir, uint64_t server_id, std::string host)
    : t_(t),
      env_(env),
      cfg_(cfg),
      master_(master_rank),
      dir_(std::move(dir)),
      server_id_(server_id),
      host_(std::move(host)),
      store_(env, Absolute(dir_)) {
  store_.set_writeback_bytes(cfg_.writeback_bytes);
}

Status ChunkServer::Start() {
  if (cfg_.format) {
    // gfs format: every chunk of this directory is discarded, and its store.
    const std::string chunks = dir_ + "/chunks";
    std::vector<std::string> names;
    if (env_->FileExists(chunks)) GFS_RETURN_IF_ERROR(env_->GetChildren(chunks, &names));
    for (const std::string& n : names) {
      if (n == "LOCK") continue;
      GFS_RETURN_IF_ERROR(env_->RemoveFile(chunks + "/" + n));
    }
    if (env_->FileExists(dir_ + "/STORE")) GFS_RETURN_IF_ERROR(env_->RemoveFile(dir_ + "/STORE"));
    if (!names.empty()) GFS_RETURN_IF_ERROR(env_->SyncDir(chunks));
    GFS_RETURN_IF_ERROR(env_->SyncDir(dir_));
  }
  GFS_RETURN_IF_ERROR(LoadStoreId(env_, dir_, &store_id_));
  GFS_RETURN_IF_ERROR(store_.Open());
  if (store_.upgraded_from() != 0) {
    GFS_LOG_WARN("chunkserver %s: upgraded %zu chunks from chunk store format %u to %u",
                 dir_.c_str(), store_.NumChunks(), store_.upgraded_from(), ChunkStore::kFormat);
  }
  stats_.counters["intents_finished_at_open"] = store_.intents_finished();
  stats_.counters["unrecorded_tail_bytes_at_open"] = store_.unrecorded_tail_bytes();
  SendRegister();
  return Status::OK();
}

uint64_t ChunkServer::Capacity() {
  if (cfg_.capacity > 0) return cfg_.capacity;
  auto free = env_->FreeSpace(dir_);
  return (free.ok() ? *free : 0) + store_.UsedBytes();
}

Status ChunkServer::RoomFor(uint64_t handle, uint64_t end) {
  if (cfg_.capacity == 0) return Status::OK();
  const uint64_t used = store_.UsedBytes();
  auto meta = store_.Meta(handle);
  if (!meta.ok()) {
    // A new chunk: only while some space is left under the cap.
    if (used < cfg_.capacity) return Status::OK();
  } else {
    uint64_t grow = end > meta->length ? end - meta->length : 0;
    if (used + grow <= cfg_.capacity) return Status::OK();
  }
  stats_.counters["no_space"]++;
  std::string msg = "chunkserver " + dir_ + " is at its capacity (";
  msg += std::to_string(used) + " of " + std::to_string(cfg_.capacity) + " bytes used)";
  return Status::NoSpace(msg);
}

void ChunkServer::SendRegister() {
  RegisterReq r;
  r.server_id = server_id_;
  auto slash = dir_.rfind('/');
  r.dir_name = slash == std::string::npos ? dir_ : dir_.substr(slash + 1);
  r.host = host_;
  r.capacity = Capacity();
  r.used = store_.UsedBytes();
  r.store_id = store_id_;
  for (const ChunkMeta& c : store_.List()) {
    r.chunks.push_back({c.handle, c.version, c.length, ToWire(store_.StartupDamage(c.handle))});
  }
  register_id_ = ++next_id_;
  register_sent_us_ = Now();
  SendRequest(t_, master_, r, register_id_, cfg_.request_timeout_ms, master_epoch_);
}

void ChunkServer::Reply(const Message& m, const Status& s) {
  if (s.ok()) {
    SendReply(t_, m, Empty{});
  } else {
    SendErrorReply(t_, m, s);
  }
}

void ChunkServer::Handle(Message& m) {
  if (!MasterEpochOk(m)) return;
  // Anything but the master's bookkeeping and stats counts as I/O: the
  // scrubber stays out of its way.
  const MsgType type = m.type();
  if (type != MsgType::kHeartbeat && type != MsgType::kRegister && type != MsgType::kGetStats) {
    last_io_us_ = Now();
  }
  // Only more appends (and their data) may pass queued appends: everything
  // else sees them written.
  if (!queued_appends_.empty() &&
      (m.is_reply() || (type != MsgType::kAppend && type != MsgType::kPushData))) {
    FlushAppends();
  }
  if (refused_) {
    // Of another store: this server serves nothing (the master said why).
    if (!m.is_reply()) {
      SendErrorReply(t_, m,
                     Status(Code::kWrongStore, "chunkserver " + dir_ + " is of another store"));
    }
    if (m.type() == MsgType::kShutdown) done_ = true;
    return;
  }
  if (m.is_reply()) {
    switch (m.type()) {
      case MsgType::kApply:
        OnApplyReply(m);
        return;
      case MsgType::kRead:
        if (repair_reads_.count(m.h.id) != 0) {
          OnRepairRead(m);
        } else {
          OnCloneRead(m);
        }
        return;
      case MsgType::kRegister:
        OnRegisterReply(m);
        return;
      case MsgType::kHeartbeat:
        OnHeartbeatReply(m);
        return;
      default:
        return;  // late or unknown reply
    }
  }
  switch (m.type()) {
    case MsgType::kPushData:
      OnPushData(m);
      return;
    case MsgType::kWrite:
      OnWrite(m);
      return;
    case MsgType::kAppend:
      OnAppend(m);
      return;
    case MsgType::kCommitted:
      OnCommitted(m);
      return;
    case MsgType::kApply:
      OnApply(m);
      return;
    case MsgType::kRead:
      OnRead(m);
      return;
    case MsgType::kReadLocal:
      OnReadLocal(m);
      return;
    case MsgType::kRepair:
      OnRepair(m);
      return;
    case MsgType::kSync:
      OnSync(m);
      return;
    case MsgType::kPrepareChunk:
      OnPrepare(m);
      return;
    case MsgType::kShutdown:
      OnShutdown(m);
      return;
    case MsgType::kVerify:
      OnVerify(m);
      return;
    case MsgType::kClone:
      OnClone(m);
      return;
    case MsgType::kGetStats:
      OnStats(m);
      return;
    case MsgType::kNewMaster:
      return;  // handled by MasterEpochOk
    default:
      SendErrorReply(
          t_, m,
          Status::Protocol(std::string("chunkserver does not serve ") + MsgTypeName(m.h.type)));
  }
}

void ChunkServer::OnPushData(Message& m) {
  PushDataMsg p;
  if (!m.Decode(&p).ok() || p.bytes.size > cfg_.slice_size * 4ull + 65536) return;
  stats_.counters["push_slices_recv"]++;
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
      SendRequest(t_, p.origin, ack, 0, 0);
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
    t_->Send(p.chain[pos + 1], m.buf);
    stats_.counters["push_bytes_forwarded"] += p.bytes.size;
  } else if (e.received == e.total) {
    PushAckMsg ack{p.data_id, 0, me};
    SendRequest(t_, p.origin, ack, 0, 0);
  }
}

void ChunkServer::KeepBounced(PushEntry* e) {
  // Long enough for the client to learn the next chunk's lease; a retry that
  // comes later pushes again (kDataMissing is retryable).
  e->expires_us = std::min(e->expires_us, Now() + 5000000);
  stats_.counters["pushes_kept_for_retry"]++;
}

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
    stats_.counters["pad_bytes"] += offset - meta->length;
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
  if (s.ok()) stats_.counters["bytes_written"] += length;
  return s;
}

void ChunkServer::OnWrite(Message& m) {
  WriteReq w;
  Status s = m.Decode(&w);
  if (!s.ok()) return Reply(m, s);
  s = CheckPrimary(w.handle, w.version);
  if (!s.ok()) return Reply(m, s);
  if (w.offset + w.length > (1ull << 40)) return Reply(m, Status::InvalidArgument("offset"));
  PushKey key{m.source, w.data_id};
  auto push = pushes_.find(key);
  const PushEntry* pe = push == pushes_.end() ? nullptr : &push->second;
  s = ApplyLocal(w.kind, w.handle, w.offset, w.length, pe);
  if (push != pushes_.end()) {
    push_held_ -= push->second.held;
    pushes_.erase(push);
  }
  if (!s.ok()) return Reply(m, MutationError(w.handle, s));
  stats_.counters["mutations_primary"]++;
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
  uint64_t key = ++next_write_key_;
  pw.waiting = static_cast<int>(secondaries.size());
  pw.deadline_us = Now() + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000;
  if (pw.kind == PendingWrite::kAppend) appends_in_flight_[pw.handle].insert(pw.offset);
  pending_writes_[key] = std::move(pw);
  for (int32_t sec : secondaries) {
    uint64_t id = ++next_id_;
    apply_to_write_[id] = key;
    SendRequest(t_, sec, a, id, cfg_.request_timeout_ms);
  }
  if (secondaries.empty()) Complete(key);
}

void ChunkServer::Complete(uint64_t key) {
  auto it = pending_writes_.find(key);
  if (it == pending_writes_.end()) return;
  PendingWrite& pw = it->second;
  if (pw.kind == PendingWrite::kAppend) {
    auto f = appends_in_flight_.find(pw.handle);
    if (f != appends_in_flight_.end()) {
      auto pos = f->second.find(pw.offset);
      if (pos != f->second.end()) f->second.erase(pos);
      if (f->second.empty()) appends_in_flight_.erase(f);
    }
  }
  if (!pw.status.ok()) {
    Reply(pw.client_req, pw.status);
  } else if (pw.kind == PendingWrite::kAppend) {
    SendReply(t_, pw.client_req, AppendReply{pw.offset});
  } else if (pw.kind == PendingWrite::kPad) {
    // Every replica is padded (and, being in serial order, has applied every
    // earlier append of this chunk): the client moves to the next chunk.
    Reply(pw.client_req, Status(Code::kRetryNextChunk, "chunk full"));
  } else {
    Reply(pw.client_req, Status::OK());
  }
  pending_writes_.erase(it);
}

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
    stats_.counters["append_pads"]++;
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
      stats_.counters["appends_primary"]++;
      lease_used_.insert(r.handle);
      QueuedAppend q;
      q.pw = std::move(pw);
      q.a = a;
      q.secondaries = r.secondaries;
      q.push = std::move(push->second);
      push_held_ -= q.push.held;
      pushes_.erase(push);
      queued_end_[r.handle] = q.pw.offset + r.length;
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
  auto queued = std::move(queued_appends_);
  queued_appends_.clear();
  queued_end_.clear();
  for (auto& [handle, items] : queued) {
    std::vector<ConstSlice> slices;
    uint64_t bytes = 0;
    for (const QueuedAppend& q : items) {
      for (const auto& sl : q.push.slices) slices.push_back({sl.second.data, sl.second.size});
      bytes += q.a.length;
    }
    // One write for the records, which lie back to back from the chunk's end.
    Status s = store_.Write(handle, items.front().pw.offset, slices);
    if (!s.ok()) s = MutationError(handle, s);
    if (s.ok()) {
      stats_.counters["bytes_written"] += bytes;
      stats_.counters["append_batches"]++;
    }
    for (QueuedAppend& q : items) {
      if (!s.ok()) {
        Reply(q.pw.client_req, s);
      } else {
        Replicate(std::move(q.pw), q.a, q.secondaries);
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
  SendReply(t_, m, rep);
}

void ChunkServer::OnApply(Message& m) {
  ApplyReq a;
  Status s = m.Decode(&a);
  if (!s.ok()) return Reply(m, s);
  auto meta = store_.Meta(a.handle);
  if (!meta.ok()) return Reply(m, meta.status());
  if (meta->version != a.version) {
    return Reply(
        m, Status(Code::kStaleVersion, "replica at version " + std::to_string(meta->version)));
  }
  PushKey key{a.origin, a.data_id};
  auto push = pushes_.find(key);
  const PushEntry* pe = push == pushes_.end() ? nullptr : &push->second;
  s = ApplyLocal(a.kind, a.handle, a.offset, a.length, pe);
  if (push != pushes_.end() && a.kind == static_cast<uint8_t>(MutationKind::kPad)) {
    KeepBounced(&push->second);        // the record's next try may use it (OnAppend)
  } else if (push != pushes_.end()) {  // consumed, or failed: never to be used
    push_held_ -= push->second.held;
    pushes_.erase(push);
  }
  if (s.ok()) stats_.counters["mutations_secondary"]++;
  Reply(m, s.ok() ? s : MutationError(a.handle, s));
}

void ChunkServer::OnApplyReply(Message& m) {
  auto it = apply_to_write_.find(m.h.id);
  if (it == apply_to_write_.end()) return;
  uint64_t key = it->second;
  apply_to_write_.erase(it);
  auto pw = pending_writes_.find(key);
  if (pw == pending_writes_.end()) return;
  Status s = m.status();
  if (!s.ok() && pw->second.status.ok()) {
    pw->second.status =
        Status(s.code(), "secondary rank " + std::to_string(m.source) + ": " + s.message());
  }
  if (--pw->second.waiting == 0) Complete(key);
}

Status ChunkServer::CheckReadable(Message& m, ReadReq* r, ChunkMeta* meta) {
  GFS_RETURN_IF_ERROR(m.Decode(r));
  auto got = store_.Meta(r->handle);
  if (!got.ok()) return got.status();
  *meta = *got;
  if (meta->version < r->version) {
    return Status(Code::kStaleVersion, "replica at version " + std::to_string(meta->version));
  }
  return Status::OK();
}

void ChunkServer::ReplyReadError(Message& m, uint64_t handle, const Status& s, const Range& bad) {
  stats_.counters["read_errors"]++;
  if (s.code() == Code::kCorruption) {
    ReportCorrupt(handle, bad.length > 0 ? std::vector<Range>{bad} : std::vector<Range>{});
  }
  Reply(m, s);
}

Status ChunkServer::MutationError(uint64_t handle, const Status& s) {
  if (s.code() != Code::kCorruption) return s;
  // A damaged block in the way (e.g. a partial overwrite of it): the replica
  // is reported and repaired from a good copy; the client tries again.
  ReportCorrupt(handle, {});
  return Status::Unavailable("replica on chunkserver " + dir_ + " is damaged (" + s.message() +
                             "); it is being repaired");
}

void ChunkServer::OnRead(Message& m) {
  ReadReq r;
  ChunkMeta meta;
  Status s = CheckReadable(m, &r, &meta);
  if (!s.ok()) return Reply(m, s);
  // Build the ReadReply in place: the blocks are read (and verified) straight
  // into the outgoing buffer, after the envelope and the reply's fixed fields.
  constexpr size_t kFixed = kHeaderSize + 8 + 4;  // chunk_length, blob length
  // A pooled buffer with room for the blocks around the range (fresh pages
  // cost a fault each; see mpi/transport/buffer_pool.h).
  auto out = TakeBuffer(0, kFixed + std::min<uint64_t>(r.length, 64u << 20) + 2 * 65536);
  size_t skip = 0, len = 0;
  Range bad;
  s = store_.ReadVerified(
      r.handle, r.offset, r.length,
      [&out](size_t span) {
        out->resize(kFixed + span);
        return out->data() + kFixed;
      },
      &skip, &len, &bad);
  if (!s.ok()) return ReplyReadError(m, r.handle, s, bad);
  if (out->size() < kFixed) out->resize(kFixed);
  if (skip > 0) std::memmove(out->data() + kFixed, out->data() + kFixed + skip, len);
  out->resize(kFixed + len);
  stats_.counters["bytes_read"] += len;
  // Envelope and fixed fields, exactly as EncodeReply(ReadReply) lays them out.
  ReadReply empty;
  empty.chunk_length = meta.length;
  Buffer head = EncodeReply(m, empty);
  std::memcpy(out->data(), head->data(), kHeaderSize + 8);
  BytesWriter w(out.get());
  w.PatchU32(kHeaderSize + 8, static_cast<uint32_t>(len));
  w.PatchU32(kHeaderSize - 4, static_cast<uint32_t>(out->size() - kHeaderSize));
  t_->Send(m.source, std::move(out));
}

void ChunkServer::OnReadLocal(Message& m) {
  ReadLocalReq r;
  ChunkMeta meta;
  Status s = CheckReadable(m, &r, &meta);
  if (!s.ok()) return Reply(m, s);
  ReadLocalReply rep;
  s = store_.BlockChecksums(r.handle, r.offset, r.length, &rep.base, &rep.end, &rep.crcs);
  if (!s.ok()) return ReplyReadError(m, r.handle, s, Range());
  rep.path = store_.DataPath(r.handle);
  rep.chunk_length = meta.length;
  rep.block_size = static_cast<uint32_t>(ChunkStore::kBlockSize);
  stats_.counters["local_reads"]++;
  SendReply(t_, m, rep);
}

void ChunkServer::OnSync(Message& m) {
  SyncReq r;
  Status s = m.Decode(&r);
  if (!s.ok()) return Reply(m, s);
  StartSync(m, r.handle);
}

void ChunkServer::StartSync(Message& m, uint64_t handle) {
  auto job = store_.PrepareSync(handle);
  if (!job.ok()) return Reply(m, job.status());
  if (*job == nullptr) {  // nothing written since the last sync
    store_.StartWritebackAll();
    return Reply(m, Status::OK());
  }
  // The device writes of every chunk written since the last sync start
  // first, in the sync thread too (sync_file_range takes 10-20 ms per
  // 64 MiB chunk here), so the disk gets the batch while this one waits.
  (*job)->writebacks = store_.TakeWritebacks();
  std::unique_lock<std::mutex> l(sync_mu_);
  if (sync_stop_) {  // shutting down: no thread any more
    l.unlock();
    return Reply(m, store_.FinishSync(**job, (*job)->Run()));
  }
  stats_.counters["syncs_in_thread"]++;
  if (!sync_thread_.joinable()) sync_thread_ = std::thread([this] { SyncLoop(); });
  sync_queue_.push_back(SyncTask{std::move(*job), m, Status::OK()});
  sync_cv_.notify_one();
}

void ChunkServer::SyncLoop() {
  std::unique_lock<std::mutex> l(sync_mu_);
  for (;;) {
    sync_cv_.wait(l, [this] { return sync_stop_ || !sync_queue_.empty(); });
    if (sync_queue_.empty()) return;  // stopping, nothing left
    SyncTask t = std::move(sync_queue_.front());
    sync_queue_.pop_front();
    l.unlock();
    t.result = t.job->Run();
    l.lock();
    sync_done_.push_back(std::move(t));
  }
}

void ChunkServer::FinishSyncs() {
  std::deque<SyncTask> done;
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    if (sync_done_.empty()) return;
    done.swap(sync_done_);
  }
  for (SyncTask& t : done) {
    Status s = store_.FinishSync(*t.job, t.result);
    // A failed sync leaves the replica unusable until it is rewritten from
    // a good copy: the master hears of it now, not at the next verification.
    if (!s.ok() && !store_.StartupDamage(t.job->handle).empty()) ReportCorrupt(t.job->handle, {});
    Reply(t.req, s);
  }
}

void ChunkServer::StopSyncThread() {
  {
    std::lock_guard<std::mutex> l(sync_mu_);
    sync_stop_ = true;
    sync_cv_.notify_one();
  }
  if (sync_thread_.joinable()) sync_thread_.join();
  FinishSyncs();
}

ChunkServer::~ChunkServer() { StopSyncThread(); }

void ChunkServer::OnPrepare(Message& m) {
  PrepareChunkReq p;
  Status s = m.Decode(&p);
  if (!s.ok()) return Reply(m, s);
  if (p.create && !store_.Has(p.handle)) {
    s = RoomFor(p.handle, 0);
    if (s.ok()) s = store_.Create(p.handle, p.version);
  } else {
    auto meta = store_.Meta(p.handle);
    if (!meta.ok()) return Reply(m, meta.status());
    if (meta->version < p.version) s = store_.SetVersion(p.handle, p.version);
  }
  if (!s.ok()) return Reply(m, s);
  if (p.primary) {
    // Expire our view of the lease a tenth early: the master counts from
    // before it sent the grant, we count from after we received it.
    uint64_t lease_us = static_cast<uint64_t>(p.lease_ms) * 1000;
    leases_[p.handle] = Now() + lease_us - lease_us / 10;
    next_serial_[p.handle] = 0;
  } else {
    leases_.erase(p.handle);
  }
  Reply(m, Status::OK());
}

void ChunkServer::DeleteChunks(const std::vector<uint64_t>& handles) {
  for (uint64_t h : handles) {
    if (repairs_.count(h) != 0) continue;  // never under a repair (the master waits for it)
    if (store_.Has(h) && store_.Delete(h).ok()) stats_.counters["chunks_deleted"]++;
    leases_.erase(h);
  }
}

bool ChunkServer::MasterEpochOk(Message& m) {
  // Messages that come from the master (orders, and replies to what this
  // server sent the master) carry the master's epoch: an older epoch is a
  // deposed master and is refused; a newer one is the master now.
  bool from_master = false;
  if (m.is_reply()) {
    from_master = m.type() == MsgType::kRegister || m.type() == MsgType::kHeartbeat;
  } else {
    switch (m.type()) {
      case MsgType::kPrepareChunk:
      case MsgType::kShutdown:
      case MsgType::kVerify:
      case MsgType::kClone:
      case MsgType::kRepair:
      case MsgType::kNewMaster:
        from_master = true;
        break;
      default:
        break;
    }
  }
  if (!from_master) return true;
  if (m.h.epoch < master_epoch_) {
    stats_.counters["stale_epoch_refused"]++;
    if (!m.is_reply()) {
      SendErrorReply(t_, m,
                     Status(Code::kStaleEpoch, "orders of master epoch " +
                                                   std::to_string(m.h.epoch) + " refused: epoch " +
                                                   std::to_string(master_epoch_) + " rules"),
                     master_epoch_);
    }
    return false;
  }
  if (m.type() == MsgType::kNewMaster) {
    NewMasterReq r;
    if (m.Decode(&r).ok() && r.epoch > master_epoch_) {
      master_epoch_ = r.epoch;
      master_ = r.master;
      registered_ = false;
      stats_.counters["new_masters"]++;
      SendRegister();  // the new master rebuilds chunk locations from it
    }
    return false;
  }
  if (m.h.epoch > master_epoch_) {
    master_epoch_ = m.h.epoch;
    if (!m.is_reply()) master_ = m.source;
  }
  return true;
}

void ChunkServer::OnRegisterReply(Message& m) {
  if (m.h.id != register_id_) return;
  if (m.status().code() == Code::kWrongStore) {
    // Not this store's: serve nothing and delete nothing (the master says why).
    refused_ = true;
    stats_.counters["refused_wrong_store"]++;
    return;
  }
  RegisterReply r;
  if (!m.status().ok() || !m.Decode(&r).ok()) return;
  if (r.store_id != 0 && r.store_id != store_id_ && (store_id_ == 0 || store_.NumChunks() == 0)) {
    // A new or empty directory (or one of an older format) joins the
    // master's store; one holding chunks of another store is refused instead.
    Status s = SaveStoreId(env_, dir_, r.store_id);
    if (!s.ok()) {
      GFS_LOG_ERROR("chunkserver %s: %s", dir_.c_str(), s.ToString().c_str());
      return;  // registers again later
    }
    store_id_ = r.store_id;
  }
  registered_ = true;
  DeleteChunks(r.delete_handles);
}

void ChunkServer::OnHeartbeatReply(Message& m) {
  HeartbeatReply r;
  if (!m.status().ok() || !m.Decode(&r).ok()) return;
  if (r.store_id != 0 && r.store_id != store_id_ && (store_id_ == 0 || store_.NumChunks() == 0) &&
      SaveStoreId(env_, dir_, r.store_id).ok()) {
    store_id_ = r.store_id;  // a new store got its identity
  }
  uint64_t lease_us = static_cast<uint64_t>(r.lease_ms) * 1000;
  for (uint64_t h : r.extended) {
    auto it = leases_.find(h);
    if (it != leases_.end()) it->second = Now() + lease_us - lease_us / 10;
  }
  DeleteChunks(r.delete_handles);
}

void ChunkServer::OnShutdown(Message& m) {
  StopSyncThread();  // answers the syncs still queued first
  Status s = store_.SyncAll();
  stats_.counters["writebacks_early"] = store_.writebacks_early();
  stats_.counters["writebacks_batched"] = store_.writebacks_batched();
  stats_.counters["evictions_synced"] = store_.evictions_synced();
  Reply(m, s);
  done_ = true;
}

void ChunkServer::ReportCorrupt(uint64_t handle, const std::vector<Range>& ranges) {
  stats_.counters["corrupt_found"]++;
  CorruptReq r;
  r.handle = handle;
  r.ranges = ToWire(ranges);
  SendRequest(t_, master_, r, ++next_id_, cfg_.request_timeout_ms, master_epoch_);
}

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
  stats_.counters["verify_runs"]++;
  SendReply(t_, m, rep);
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
  Clone c;
  c.master_req = m;
  c.handle = r.handle;
  c.version = r.version;
  c.source = r.source;
  c.deadline_us = Now() + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000;
  uint64_t id = ++next_id_;
  ReadReq rr{r.handle, r.version, 0, cfg_.read_size};
  clones_[id] = std::move(c);
  SendRequest(t_, r.source, rr, id, cfg_.request_timeout_ms);
  stats_.counters["clones_started"]++;
}

void ChunkServer::FinishClone(uint64_t read_id, const Status& s) {
  auto it = clones_.find(read_id);
  if (it == clones_.end()) return;
  Clone c = std::move(it->second);
  clones_.erase(it);
  Status st = s;
  if (st.ok()) st = store_.Sync(c.handle);
  if (st.ok()) st = store_.SetVersion(c.handle, c.version);
  if (!st.ok()) {
    store_.Delete(c.handle);
    stats_.counters["clones_failed"]++;
  } else {
    stats_.counters["clones_done"]++;
    stats_.counters["clone_bytes"] += c.offset;
  }
  Reply(c.master_req, st);
}

void ChunkServer::OnCloneRead(Message& m) {
  auto it = clones_.find(m.h.id);
  if (it == clones_.end()) return;
  Status s = m.status();
  ReadReply rep;
  if (s.ok()) s = m.Decode(&rep);
  if (!s.ok()) return FinishClone(m.h.id, s);
  Clone& c = it->second;
  if (rep.bytes.size > 0) {
    s = RoomFor(c.handle, c.offset + rep.bytes.size);
    if (s.ok()) s = store_.Write(c.handle, c.offset, rep.bytes.data, rep.bytes.size);
    if (!s.ok()) return FinishClone(m.h.id, s);
    c.offset += rep.bytes.size;
  }
  if (rep.bytes.size == 0 || c.offset >= rep.chunk_length) {
    if (c.offset < rep.chunk_length) {
      return FinishClone(m.h.id, Status::IOError("source replica ended early"));
    }
    return FinishClone(m.h.id, Status::OK());
  }
  uint64_t id = ++next_id_;
  ReadReq rr{c.handle, c.version, c.offset, cfg_.read_size};
  int32_t source = c.source;
  c.deadline_us = Now() + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000;
  clones_[id] = std::move(c);
  clones_.erase(m.h.id);
  SendRequest(t_, source, rr, id, cfg_.request_timeout_ms);
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
  stats_.counters["repairs_started"]++;
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
        stats_.counters["repair_blocks_unavailable"]++;
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
    const uint64_t id = ++next_id_;
    if (!SendRequest(t_, src, rr, id, cfg_.request_timeout_ms).ok()) {
      rp.source++;
      continue;
    }
    rp.read_id = id;
    rp.deadline_us = Now() + static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000;
    repair_reads_[id] = handle;
    return;  // OnRepairRead goes on
  }
  FinishRepair(handle, Status::OK());
}

void ChunkServer::OnRepairRead(Message& m) {
  auto rr = repair_reads_.find(m.h.id);
  if (rr == repair_reads_.end()) return;
  const uint64_t handle = rr->second;
  repair_reads_.erase(rr);
  auto it = repairs_.find(handle);
  if (it == repairs_.end() || it->second.read_id != m.h.id) return;
  Repair& rp = it->second;
  rp.read_id = 0;
  const Range piece = rp.todo.front();
  ReadReply rep;
  Status s = m.status();
  if (s.ok()) s = m.Decode(&rep);
  if (s.ok() && rep.bytes.size != piece.length) {
    s = Status::Corruption("source gave " + std::to_string(rep.bytes.size) + " of " +
                           std::to_string(piece.length) + " bytes");
  }
  if (!s.ok()) {
    stats_.counters["repair_reads_failed"]++;
    rp.source++;
    return NextRepairPiece(handle);
  }
  s = store_.RepairBlocks(handle, piece.offset, rep.bytes.data, rep.bytes.size);
  if (!s.ok()) return FinishRepair(handle, s);
  rp.repaired += piece.length;
  stats_.counters["repair_bytes"] += piece.length;
  rp.todo.pop_front();
  rp.source = 0;
  NextRepairPiece(handle);
}

void ChunkServer::FinishRepair(uint64_t handle, const Status& s) {
  auto it = repairs_.find(handle);
  if (it == repairs_.end()) return;
  Repair rp = std::move(it->second);
  repairs_.erase(it);
  if (rp.read_id != 0) repair_reads_.erase(rp.read_id);
  Status st = s;
  RepairReply rep;
  rep.repaired_bytes = rp.repaired;
  // Durable before the master counts the blocks good; then verified anew.
  if (st.ok()) st = store_.Sync(handle);
  std::vector<Range> left;
  if (st.ok()) st = store_.Scan(handle, &left);
  if (!st.ok()) {
    stats_.counters["repairs_failed"]++;
    return Reply(rp.master_req, st);
  }
  rep.still_damaged = ToWire(left);
  stats_.counters[left.empty() ? "repairs_done" : "repairs_partial"]++;
  SendReply(t_, rp.master_req, rep);
}

void ChunkServer::OnStats(Message& m) {
  StatsReply r;
  for (const auto& [k, v] : stats_.counters) {
    r.names.push_back(k);
    r.values.push_back(v);
  }
  SendReply(t_, m, r);
}

void ChunkServer::NoteClockGap(uint64_t now) {
  const uint64_t last = last_tick_us_;
  last_tick_us_ = now;
  if (last == 0 || now >= last) return;
  // The clock jumped back by `d`: every time kept moves back with it, so
  // what was due in 10 ms still is (a heartbeat, a lease's end).
  const uint64_t d = last - now;
  auto back = [&](uint64_t& t) { t = t > d ? t - d : 0; };
  back(register_sent_us_);
  back(next_heartbeat_us_);
  back(next_scrub_us_);
  back(last_io_us_);
  for (auto& [handle, expiry] : leases_) back(expiry);
  for (auto& [key, pw] : pending_writes_) back(pw.deadline_us);
  for (auto& [id, c] : clones_) back(c.deadline_us);
  for (auto& [key, p] : pushes_) back(p.expires_us);
  for (auto& [h, r] : repairs_) back(r.deadline_us);
  stats_.counters["clock_gaps"]++;
}

void ChunkServer::Tick(uint64_t) {
  FinishSyncs();
  if (refused_) return;
  const uint64_t now = Now();
  NoteClockGap(now);
  if (!registered_ &&
      Elapsed(now, register_sent_us_) > static_cast<uint64_t>(cfg_.request_timeout_ms) * 1000) {
    SendRegister();
  }
  if (registered_ && now >= next_heartbeat_us_) {
    next_heartbeat_us_ = now + static_cast<uint64_t>(cfg_.heartbeat_ms) * 1000;
    HeartbeatReq hb;
    hb.used = store_.UsedBytes();
    hb.capacity = Capacity();
    hb.num_chunks = static_cast<uint32_t>(store_.NumChunks());
    hb.extend_leases.assign(lease_used_.begin(), lease_used_.end());
    lease_used_.clear();
    SendRequest(t_, master_, hb, ++next_id_, cfg_.heartbeat_ms * 2, master_epoch_);
  }
  for (auto it = pending_writes_.begin(); it != pending_writes_.end();) {
    if (now >= it->second.deadline_us) {
      uint64_t key = it->first;
      ++it;
      pending_writes_[key].status = Status::Timeout("a secondary did not answer in time");
      Complete(key);
    } else {
      ++it;
    }
  }
  std::vector<uint64_t> late_repairs;
  for (const auto& [h, r] : repairs_) {
    if (r.read_id != 0 && now >= r.deadline_us) late_repairs.push_back(h);
  }
  for (uint64_t h : late_repairs) {
    // The source did not answer: as a failed read (the next source).
    Repair& r = repairs_[h];
    repair_reads_.erase(r.read_id);
    r.read_id = 0;
    r.source++;
    stats_.counters["repair_reads_failed"]++;
    NextRepairPiece(h);
  }
  for (auto it = clones_.begin(); it != clones_.end();) {
    uint64_t id = it->first;
    bool late = now >= it->second.deadline_us;
    ++it;
    if (late) FinishClone(id, Status::Timeout("the source of a clone did not answer"));
  }
  for (auto it = pushes_.begin(); it != pushes_.end();) {
    if (now >= it->second.expires_us) {
      push_held_ -= it->second.held;
      it = pushes_.erase(it);
    } else {
      ++it;
    }
  }
  Scrub(now);
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
        stats_.counters["scrub_passes"]++;
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
    stats_.counters["scrub_corrupt"]++;
    ReportCorrupt(scrub_handle_, bad.length > 0 ? std::vector<Range>{bad} : std::vector<Range>{});
    scrub_offset_ = bad.length > 0 ? bad.offset + bad.length : ~0ull;
  } else if (!s.ok() || len == 0) {
    scrub_offset_ = ~0ull;  // gone, or unreadable for another reason: next chunk
  } else {
    scrub_offset_ += len;
    stats_.counters["scrub_bytes"] += len;
  }
  // Pace: the bytes just verified, at the configured rate.
  next_scrub_us_ = now + cost * 1000000 / (static_cast<uint64_t>(cfg_.scrub_mb_per_s) << 20);
}

}  // namespace gfs
